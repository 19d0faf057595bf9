// The 3D view: lit surfaces of the label mask (liver see-through, tumours and vessels
// opaque), the slice planes as faint fills and outlines, drawn into an off-screen colour +
// depth target; then `fs_blit` copies that target into egui's viewport.
//
// Positions arrive relative to the scene's centre (mm, LPS); `view_proj` carries the
// translation, composed in f64 on the CPU. Colours are display (sRGB-encoded) values and
// are lit and blended as such: the target is `Rgba8Unorm` holding display values, so a
// snapshot reads back exactly what the screen shows.
//
// Keep `Frame` in sync with `FrameUniforms` in src/app/gpu/mesh.rs.

struct Frame {
    view_proj: mat4x4<f32>,
    // eye position relative to the scene origin (w unused)
    eye: vec4<f32>,
    // liver opacity, ambient, diffuse, specular
    params: vec4<f32>,
};

@group(0) @binding(0) var<uniform> frame: Frame;
// per object: rgb, kind (0 liver, 1 tumour, 2 vessels); indexed by the instance index,
// which each draw sets to its object's index
@group(0) @binding(1) var<storage, read> objects: array<vec4<f32>>;

struct MeshIn {
    @location(0) position: vec3<f32>,
    @location(1) normal: vec3<f32>,
};

struct MeshOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) pos: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) @interpolate(flat) colour: vec3<f32>,
};

@vertex
fn vs_mesh(v: MeshIn, @builtin(instance_index) object: u32) -> MeshOut {
    var out: MeshOut;
    out.clip = frame.view_proj * vec4<f32>(v.position, 1.0);
    out.pos = v.position;
    out.normal = v.normal;
    out.colour = objects[object].rgb;
    return out;
}

// Headlight: the light sits at the eye, so the half vector is the view vector and one
// dot product gives both the diffuse and the specular term. Faces seen from behind (the
// liver's far wall through its near wall) are lit as seen, with the normal turned round.
fn lit(in: MeshOut, front: bool) -> vec4<f32> {
    var n = normalize(in.normal);
    if (!front) {
        n = -n;
    }
    let v = normalize(frame.eye.xyz - in.pos);
    let ndv = max(dot(n, v), 0.0);
    let rgb = in.colour * (frame.params.y + frame.params.z * ndv) + vec3<f32>(frame.params.w * pow(ndv, 32.0));
    return vec4<f32>(min(rgb, vec3<f32>(1.0)), ndv);
}

@fragment
fn fs_opaque(in: MeshOut, @builtin(front_facing) front: bool) -> @location(0) vec4<f32> {
    return vec4<f32>(lit(in, front).rgb, 1.0);
}

// The liver is lit per vertex: it is the one large surface (300k triangles), lavapipe
// pays per triangle for every value passed to the fragment stage, and a see-through
// surface hides the difference. Lit from both sides alike (|n·v|), since the back faces
// seen through the front are drawn too.
struct LiverOut {
    @builtin(position) clip: vec4<f32>,
    // lit rgb, and 1 − |n·v| (how far the surface turns away from the viewer)
    @location(0) colour: vec4<f32>,
};

@vertex
fn vs_liver(v: MeshIn, @builtin(instance_index) object: u32) -> LiverOut {
    var out: LiverOut;
    out.clip = frame.view_proj * vec4<f32>(v.position, 1.0);
    let ndv = abs(dot(normalize(v.normal), normalize(frame.eye.xyz - v.position)));
    let rgb = objects[object].rgb * (frame.params.y + frame.params.z * ndv) + vec3<f32>(frame.params.w * pow(ndv, 32.0));
    out.colour = vec4<f32>(min(rgb, vec3<f32>(1.0)), 1.0 - ndv);
    return out;
}

// More opaque where the surface turns away from the viewer, so the liver's outline reads
// clearly while its middle stays clear enough to see the tumours through it.
@fragment
fn fs_liver(in: LiverOut) -> @location(0) vec4<f32> {
    let a = frame.params.x;
    let edge = in.colour.a;
    let alpha = mix(a, min(1.0, a * 2.5 + 0.1), edge * edge);
    return vec4<f32>(in.colour.rgb, clamp(alpha, 0.0, 1.0));
}

struct FlatIn {
    @location(0) position: vec3<f32>,
    @location(1) colour: vec4<f32>,
};

struct FlatOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) colour: vec4<f32>,
};

@vertex
fn vs_flat(v: FlatIn) -> FlatOut {
    var out: FlatOut;
    out.clip = frame.view_proj * vec4<f32>(v.position, 1.0);
    out.colour = v.colour;
    return out;
}

@fragment
fn fs_flat(in: FlatOut) -> @location(0) vec4<f32> {
    return in.colour;
}

// ---- blit into egui's render pass ------------------------------------------------------

// The target to show; a separate binding number from the scene's (another pipeline, but
// one shader module).
@group(0) @binding(2) var shown: texture_2d<f32>;

// egui's target stores sRGB: decode so the hardware's encode gives back the display value.
override SRGB: bool = false;

struct BlitOut {
    @builtin(position) clip: vec4<f32>,
    // 0…1 across the viewport, y down
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_blit(@builtin(vertex_index) i: u32) -> BlitOut {
    let x = f32((i << 1u) & 2u);
    let y = f32(i & 2u);
    var out: BlitOut;
    out.clip = vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.uv = vec2<f32>(x, y);
    return out;
}

fn to_linear(c: vec3<f32>) -> vec3<f32> {
    return select(pow((c + 0.055) / 1.055, vec3<f32>(2.4)), c / 12.92, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_blit(in: BlitOut) -> @location(0) vec4<f32> {
    // one texel per pixel: the target has the viewport's size in pixels
    let dims = vec2<f32>(textureDimensions(shown));
    let texel = vec2<i32>(clamp(floor(in.uv * dims), vec2<f32>(0.0), dims - 1.0));
    let c = textureLoad(shown, texel, 0).rgb;
    if (SRGB) {
        return vec4<f32>(to_linear(c), 1.0);
    }
    return vec4<f32>(c, 1.0);
}
