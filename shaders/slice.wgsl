// One viewport of an MPR plane: `fs_main` samples the CT 3D texture along the screen plane,
// applies window/level and blends optionally a second image (the registration overlays:
// colour fusion, displacement heat map, deformation grid) in one pass; `fs_overlay` then
// blends the label mask over it in a second, alpha-blended draw.
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
    // interp (0 nearest, 1 linear), outline (0/1), sRGB target (0/1), unused. They choose
    // the pipeline (see the overrides below) and are not read here.
    flags: vec4<u32>,
    palette: array<vec4<f32>, 16>,
    // The second image (layer), like the CT; w of layer_dims = 1 when one is drawn.
    layer_centre: vec4<f32>,
    layer_right: vec4<f32>,
    layer_down: vec4<f32>,
    layer_dims: vec4<f32>,
    // Fusion: CT colour (rgb); heat: min, max, opacity; grid: line colour (rgb).
    layer_a: vec4<f32>,
    // Fusion: layer colour (rgb).
    layer_b: vec4<f32>,
    // Mode (1 fusion, 2 heat, 3 grid), grid bits of the view's in-plane axes, unused ×2.
    layer_mode: vec4<u32>,
};

// Pipeline-overridable: one pipeline per drawing mode. llvmpipe (lavapipe) runs both sides
// of a branch under a mask even when the condition is uniform, so a uniform flag would make
// every fragment pay for trilinear sampling and the outline test; constants let the
// compiler drop the unused code instead.
override LINEAR: bool = true;
override OUTLINE: bool = false;
// The target stores sRGB: re-encode display values (pow per channel: costly on llvmpipe).
override SRGB: bool = false;
override LAYER: bool = false;

@group(0) @binding(0) var<uniform> u: Uniforms;
// CT and layer as R16Float (HU exact to ±2048), so a sampler can filter them; labels as
// R8Unorm (label / 255). Every read is a sampler fetch: on lavapipe one filtered fetch costs
// less than one bounds-checked textureLoad, let alone the eight of a trilinear by hand.
@group(0) @binding(1) var ct_tex: texture_3d<f32>;
@group(0) @binding(2) var mask_tex: texture_3d<f32>;
@group(0) @binding(3) var layer_tex: texture_3d<f32>;
@group(0) @binding(4) var trilinear: sampler;
@group(0) @binding(5) var nearest: sampler;

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

// The centre of the texel nearest to `t`, as a sampler coordinate: floor(t + 0.5) rounds
// halves up like the CPU reslicer (WGSL's round() goes to even, and a sampler's own nearest
// rounding is not pinned down at halves). Out of range, the edge mode clamps to the border
// texel, as a clamped index would.
fn texel_centre(t: vec3<f32>, dims: vec3<f32>) -> vec3<f32> {
    return (floor(t + vec3<f32>(0.5)) + vec3<f32>(0.5)) / dims;
}

// `tex` (of size `dims`) at texel position `t`, nearest.
fn fetch_nearest(tex: texture_3d<f32>, dims: vec3<f32>, t: vec3<f32>) -> f32 {
    return textureSampleLevel(tex, nearest, texel_centre(t, dims), 0.0).r;
}

// `tex` at `t` as the pipeline samples: nearest, or one filtered fetch. Clamping the position
// to the outer texel centres first matches volume::trilinear at the half-voxel border (and
// leaves the edge mode no say).
fn fetch(tex: texture_3d<f32>, dims: vec3<f32>, t: vec3<f32>) -> f32 {
    if (!LINEAR) {
        return fetch_nearest(tex, dims, t);
    }
    let tc = clamp(t, vec3<f32>(0.0), dims - vec3<f32>(1.0));
    return textureSampleLevel(tex, trilinear, (tc + vec3<f32>(0.5)) / dims, 0.0).r;
}

fn sample_ct(t: vec3<f32>) -> f32 {
    return fetch(ct_tex, u.ct_dims.xyz, t);
}

fn sample_layer(t: vec3<f32>) -> f32 {
    return fetch(layer_tex, u.layer_dims.xyz, t);
}

fn windowed(hu: f32) -> f32 {
    let width = max(u.window.y, 1.0);
    return clamp((hu - (u.window.x - 0.5 * width)) / width, 0.0, 1.0);
}

// Black, red, yellow, white: brightness rises with the value, readable in grey too.
fn heat(t: f32) -> vec3<f32> {
    return clamp(vec3<f32>(3.0 * t, 3.0 * t - 1.0, 3.0 * t - 2.0), vec3<f32>(0.0), vec3<f32>(1.0));
}

fn apply_layer(rgb_in: vec3<f32>, grey: f32, d: vec2<f32>) -> vec3<f32> {
    var rgb = rgb_in;
    let t = u.layer_centre.xyz + d.x * u.layer_right.xyz + d.y * u.layer_down.xyz;
    let mode = u.layer_mode.x;
    if (mode == 1u) {
        // fusion: outside the layer only the CT's colour remains
        var g2 = 0.0;
        if (inside(t, u.layer_dims.xyz)) {
            g2 = windowed(sample_layer(t));
        }
        rgb = clamp(grey * u.layer_a.rgb + g2 * u.layer_b.rgb, vec3<f32>(0.0), vec3<f32>(1.0));
    } else if (inside(t, u.layer_dims.xyz)) {
        if (mode == 2u) {
            let v = (sample_layer(t) - u.layer_a.x) / max(u.layer_a.y - u.layer_a.x, 1e-3);
            if (v > 0.0) {
                rgb = mix(rgb, heat(min(v, 1.0)), u.layer_a.z);
            }
        } else if (mode == 3u) {
            let bits = u32(fetch_nearest(layer_tex, u.layer_dims.xyz, t));
            if ((bits & u.layer_mode.y) != 0u) {
                rgb = mix(rgb, u.layer_a.rgb, 0.85);
            }
        }
    }
    return rgb;
}

// Label under a texel position, 0 outside the mask.
fn label_at(t: vec3<f32>) -> u32 {
    if (!inside(t, u.mask_dims.xyz)) {
        return 0u;
    }
    return u32(fetch_nearest(mask_tex, u.mask_dims.xyz, t) * 255.0 + 0.5);
}

fn linear_from_gamma(c: vec3<f32>) -> vec3<f32> {
    let lower = c / 12.92;
    let higher = pow((c + vec3<f32>(0.055)) / 1.055, vec3<f32>(2.4));
    return select(higher, lower, c < vec3<f32>(0.04045));
}

// A fragment's offset in pixels from the viewport's centre; pixel centres sit at +0.5, as in
// ScreenPlane.
fn from_centre(frag: vec4<f32>) -> vec2<f32> {
    return frag.xy - u.viewport_px.xy - 0.5 * u.viewport_px.zw;
}

@fragment
fn fs_main(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    let d = from_centre(frag);

    var rgb = vec3<f32>(0.0);
    var grey = 0.0;
    let t = u.ct_centre.xyz + d.x * u.ct_right.xyz + d.y * u.ct_down.xyz;
    if (u.ct_dims.w > 0.5 && inside(t, u.ct_dims.xyz)) {
        grey = windowed(sample_ct(t));
        rgb = vec3<f32>(grey);
    }
    if (LAYER && u.layer_dims.w > 0.5) {
        rgb = apply_layer(rgb, grey, d);
    }

    // Colours above are display (gamma) values; an sRGB target re-encodes on store.
    if (SRGB) {
        rgb = linear_from_gamma(rgb);
    }
    return vec4<f32>(rgb, 1.0);
}

// The label mask over what `fs_main` drew, through alpha blending (for a non-sRGB target the
// same as mixing in the shader). A second draw rather than a branch of `fs_main`: on lavapipe
// the overlay code inside the CT shader slowed every fragment of the viewport by about twice
// the cost of this pass, which the caller also limits (scissor) to where labels can be.
@fragment
fn fs_overlay(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    let d = from_centre(frag);
    let m = u.mask_centre.xyz + d.x * u.mask_right.xyz + d.y * u.mask_down.xyz;
    let label = label_at(m);
    if (label == 0u) {
        discard;
    }
    if (OUTLINE) {
        // Boundary in screen space: some 4-neighbour pixel shows another label.
        let l = label_at(m - u.mask_right.xyz);
        let r = label_at(m + u.mask_right.xyz);
        let up = label_at(m - u.mask_down.xyz);
        let dn = label_at(m + u.mask_down.xyz);
        if (l == label && r == label && up == label && dn == label) {
            discard;
        }
    }
    let c = u.palette[min(label, 15u)];
    var rgb = c.rgb;
    if (SRGB) {
        rgb = linear_from_gamma(rgb);
    }
    return vec4<f32>(rgb, c.a * u.window.z);
}
