# Copy of a format-2 weights file with any_phase_subset cleared (0): the network then gets a
# study's phases the pooled way (a phase without portal venous through the portal venous
# channel; segment::infer::channel_inputs). Used once, between run A and the shipped run D
# (models/MODEL_CARD.md, 'The shipped weights since 2026-12-06'). Usage: IN OUT
import sys, json, struct, numpy as np
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8+n])
e = h['hepaview.config']; s, t = e['data_offsets']; base = 8 + n
v = np.frombuffer(b[base+s:base+t], dtype='<f4').copy(); print('config', v); assert v[0] == 2; v[-1] = 0
out = bytearray(b); out[base+s:base+t] = v.tobytes(); open(sys.argv[2], 'wb').write(out)
