// One viewport of an MPR plane: samples the CT 3D texture along the screen plane, applies
// window/level, and blends a label mask over it in the same pass.
//
// The plane arrives already in texel space (the CPU composes world→texel with the screen
// plane in f64), so the shader never handles LPS millimetres: world positions of several
// hundred mm in f32 would cost precision for nothing.
//
// Keep `Uniforms` in sync with `SliceUniforms` in src/app/gpu/slice.rs.

struct Uniforms {
    // Viewport origin (x, y) and size (w, h) in framebuffer pixels.
    viewport_px: vec4<f32>,
    // CT texel index at the viewport centre, and per pixel right / down.
    ct_centre: vec4<f32>,
    ct_right: vec4<f32>,
    ct_down: vec4<f32>,
    // CT texture size (x, y, z); w = 1 when a CT is bound.
    ct_dims: vec4<f32>,
    // The same for the label mask; w = 1 when an overlay is drawn.
    mask_centre: vec4<f32>,
    mask_right: vec4<f32>,
    mask_down: vec4<f32>,
    mask_dims: vec4<f32>,
    // level (HU), width (HU), overlay opacity, unused.
    window: vec4<f32>,
    // interp (0 nearest, 1 linear), outline (0/1), sRGB target (0/1), unused. The first
    // two choose the pipeline (see the overrides below); only sRGB is read here.
    flags: vec4<u32>,
    palette: array<vec4<f32>, 16>,
};

// Pipeline-overridable: one pipeline per drawing mode. llvmpipe (lavapipe) runs both sides
// of a branch under a mask even when the condition is uniform, so a uniform flag would make
// every fragment pay for trilinear sampling and the outline test; constants let the
// compiler drop the unused code instead.
override LINEAR: bool = true;
override OVERLAY: bool = true;
override OUTLINE: bool = false;
// The target stores sRGB: re-encode display values (pow per channel: costly on llvmpipe).
override SRGB: bool = false;

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var ct_tex: texture_3d<i32>;
@group(0) @binding(2) var mask_tex: texture_3d<u32>;

// A triangle that covers the whole viewport (vertices at (-1, 1), (3, 1), (-1, -3)).
@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let x = f32((i << 1u) & 2u);
    let y = f32(i & 2u);
    return vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
}

fn inside(t: vec3<f32>, dims: vec3<f32>) -> bool {
    return all(t >= vec3<f32>(-0.5)) && all(t <= dims - vec3<f32>(0.5));
}

fn load_ct(p: vec3<i32>) -> f32 {
    let hi = vec3<i32>(u.ct_dims.xyz) - vec3<i32>(1);
    return f32(textureLoad(ct_tex, clamp(p, vec3<i32>(0), hi), 0).r);
}

// floor(t + 0.5) rounds halves up like the CPU reslicer; WGSL's round() goes to even.
fn nearest_index(t: vec3<f32>) -> vec3<i32> {
    return vec3<i32>(floor(t + vec3<f32>(0.5)));
}

fn sample_ct(t: vec3<f32>) -> f32 {
    if (!LINEAR) {
        return load_ct(nearest_index(t));
    }
    // Trilinear by hand: R16Sint cannot be filtered by a sampler. Clamping the position
    // first matches volume::trilinear at the half-voxel border.
    let tc = clamp(t, vec3<f32>(0.0), u.ct_dims.xyz - vec3<f32>(1.0));
    let f0 = floor(tc);
    let f = tc - f0;
    let p = vec3<i32>(f0);
    let c000 = load_ct(p);
    let c100 = load_ct(p + vec3<i32>(1, 0, 0));
    let c010 = load_ct(p + vec3<i32>(0, 1, 0));
    let c110 = load_ct(p + vec3<i32>(1, 1, 0));
    let c001 = load_ct(p + vec3<i32>(0, 0, 1));
    let c101 = load_ct(p + vec3<i32>(1, 0, 1));
    let c011 = load_ct(p + vec3<i32>(0, 1, 1));
    let c111 = load_ct(p + vec3<i32>(1, 1, 1));
    let c00 = mix(c000, c100, f.x);
    let c01 = mix(c010, c110, f.x);
    let c10 = mix(c001, c101, f.x);
    let c11 = mix(c011, c111, f.x);
    return mix(mix(c00, c01, f.y), mix(c10, c11, f.y), f.z);
}

// Label under a texel position, 0 outside the mask.
fn label_at(t: vec3<f32>) -> u32 {
    if (!inside(t, u.mask_dims.xyz)) {
        return 0u;
    }
    let hi = vec3<i32>(u.mask_dims.xyz) - vec3<i32>(1);
    return textureLoad(mask_tex, clamp(nearest_index(t), vec3<i32>(0), hi), 0).r;
}

fn linear_from_gamma(c: vec3<f32>) -> vec3<f32> {
    let lower = c / 12.92;
    let higher = pow((c + vec3<f32>(0.055)) / 1.055, vec3<f32>(2.4));
    return select(higher, lower, c < vec3<f32>(0.04045));
}

@fragment
fn fs_main(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    // Pixel centres sit at +0.5, as in ScreenPlane.
    let d = frag.xy - u.viewport_px.xy - 0.5 * u.viewport_px.zw;

    var rgb = vec3<f32>(0.0);
    let t = u.ct_centre.xyz + d.x * u.ct_right.xyz + d.y * u.ct_down.xyz;
    if (u.ct_dims.w > 0.5 && inside(t, u.ct_dims.xyz)) {
        let hu = sample_ct(t);
        let width = max(u.window.y, 1.0);
        let grey = clamp((hu - (u.window.x - 0.5 * width)) / width, 0.0, 1.0);
        rgb = vec3<f32>(grey);
    }

    if (OVERLAY && u.mask_dims.w > 0.5) {
        let m = u.mask_centre.xyz + d.x * u.mask_right.xyz + d.y * u.mask_down.xyz;
        let label = label_at(m);
        if (label > 0u) {
            var show = true;
            if (OUTLINE) {
                // Boundary in screen space: some 4-neighbour pixel shows another label.
                let l = label_at(m - u.mask_right.xyz);
                let r = label_at(m + u.mask_right.xyz);
                let up = label_at(m - u.mask_down.xyz);
                let dn = label_at(m + u.mask_down.xyz);
                show = l != label || r != label || up != label || dn != label;
            }
            if (show) {
                let c = u.palette[min(label, 15u)];
                rgb = mix(rgb, c.rgb, c.a * u.window.z);
            }
        }
    }

    // Colours above are display (gamma) values; an sRGB target re-encodes on store.
    if (SRGB) {
        rgb = linear_from_gamma(rgb);
    }
    return vec4<f32>(rgb, 1.0);
}
