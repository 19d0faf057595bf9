"""Compares two folders written by scripts/same-outputs.sh: NIfTI decompressed, JSON with
timing fields masked, text with run times masked. Prints what differs."""
import sys, os, gzip, json, re, hashlib
a, b = sys.argv[1], sys.argv[2]
TIMEY = re.compile(r'(seconds|_s$|time|elapsed|duration|_ms$|created|date)', re.I)
def load(p):
    data = open(p, 'rb').read()
    if p.endswith('.gz'):
        try: data = gzip.decompress(data)
        except Exception: pass
    return data
def scrub(o):
    if isinstance(o, dict):
        return {k: ('<t>' if TIMEY.search(k) and isinstance(v, (int, float, str)) else scrub(v)) for k, v in o.items()}
    if isinstance(o, list):
        return [scrub(x) for x in o]
    return o
files = set()
for root in (a, b):
    for d, _, fs in os.walk(root):
        for f in fs:
            files.add(os.path.relpath(os.path.join(d, f), root))
same = diff = 0
for f in sorted(files):
    pa, pb = os.path.join(a, f), os.path.join(b, f)
    if not (os.path.exists(pa) and os.path.exists(pb)):
        print('ONLY IN ONE:', f); diff += 1; continue
    da, db = load(pa), load(pb)
    if da == db: same += 1; continue
    if f.endswith('.json'):
        try:
            if scrub(json.loads(da)) == scrub(json.loads(db)): same += 1; continue
        except Exception: pass
    if f.endswith('.txt') or f.endswith('.html') or f.endswith('.csv'):
        la = re.sub(rb'[0-9]+\.[0-9]+ s\b|in [0-9.]+ s', b'<t>', da); lb = re.sub(rb'[0-9]+\.[0-9]+ s\b|in [0-9.]+ s', b'<t>', db)
        if la == lb: same += 1; continue
    print('DIFFERS:', f, len(da), len(db)); diff += 1
print(f'{same} same, {diff} differ')
