// Direct volume rendering of one CT phase for the 3D view: a ray per pixel from the eye,
// marched through the volume's box at a fixed step, each sample's HU mapped through a
// transfer function (colour + opacity per mm), composited front to back until the ray is
// nearly opaque, leaves the box or reaches the opaque surfaces already drawn (the mesh
// depth buffer), so tumours and vessel meshes hide what lies behind them.
//
// `fs_march` writes premultiplied colour into a target that may be smaller than the view
// (drawn at reduced resolution while the camera moves); `fs_composite` then lays that
// target over the view's colour target ("over" blending, premultiplied).
//
// Positions are relative to the scene's centre (mm, LPS) as in mesh.wgsl. Colours are
// display values, as everywhere in the 3D view.
//
// Keep `Dvr` in sync with `DvrUniforms` in src/app/gpu/dvr.rs.

struct Dvr {
    // scene-relative world (mm) → texture coordinates (0…1 across the volume's box)
    world_to_tex: mat4x4<f32>,
    // eye (scene-relative mm); w: step along the ray, mm
    eye: vec4<f32>,
    // screen right · tan(half horizontal field); w: depth-buffer term A
    right: vec4<f32>,
    // screen up · tan(half vertical field); w: depth-buffer term B (view distance = B / (d + A))
    up: vec4<f32>,
    // view direction (unit); w: opacity exponent per step (step mm × opacity scale)
    forward: vec4<f32>,
    // HU of the first table entry, entries per HU, last entry index, shading (0 or 1)
    tf: vec4<f32>,
    // view size (px), march target size (px)
    size: vec4<f32>,
    // one voxel in texture coordinates (for gradients); w: most steps per ray
    voxel: vec4<f32>,
    // HU at and below which the transfer function is transparent, brick side (voxels)
    skip: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: Dvr;
@group(0) @binding(1) var volume: texture_3d<f32>;
@group(0) @binding(2) var linear: sampler;
// the transfer function: rgb (display) and opacity per mm, evenly spaced in HU
@group(0) @binding(3) var<storage, read> table: array<vec4<f32>>;
@group(0) @binding(4) var mesh_depth: texture_depth_2d;
// largest HU per brick of voxels (with a one-voxel border): bricks below `skip.x` are empty
@group(0) @binding(6) var bricks: texture_3d<f32>;

struct FullOut {
    @builtin(position) clip: vec4<f32>,
    // 0…1 across the viewport, y down
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_full(@builtin(vertex_index) i: u32) -> FullOut {
    let x = f32((i << 1u) & 2u);
    let y = f32(i & 2u);
    var out: FullOut;
    out.clip = vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.uv = vec2<f32>(x, y);
    return out;
}

fn classify(hu: f32) -> vec4<f32> {
    let x = clamp((hu - u.tf.x) * u.tf.y, 0.0, u.tf.z);
    let i = u32(x);
    let j = min(i + 1u, u32(u.tf.z));
    return mix(table[i], table[j], x - f32(i));
}

fn sample_hu(p: vec3<f32>) -> f32 {
    return textureSampleLevel(volume, linear, p, 0.0).r;
}

@fragment
fn fs_march(in: FullOut) -> @location(0) vec4<f32> {
    // this pixel's centre in the full-size view
    let full = in.clip.xy * (u.size.xy / u.size.zw);
    let ndc = vec2<f32>(full.x / u.size.x * 2.0 - 1.0, 1.0 - full.y / u.size.y * 2.0);
    let dir = normalize(u.right.xyz * ndc.x + u.up.xyz * ndc.y + u.forward.xyz);
    let eye = u.eye.xyz;

    // where the ray meets an opaque surface (nothing drawn: depth 1)
    let texel = clamp(vec2<i32>(full), vec2<i32>(0), vec2<i32>(u.size.xy) - 1);
    let d = textureLoad(mesh_depth, texel, 0);
    var t_stop = 1.0e9;
    if (d < 1.0) {
        t_stop = (u.up.w / (d + u.right.w)) / max(dot(dir, u.forward.xyz), 1.0e-4);
    }

    // the volume's box in texture space: slabs 0…1
    let o = (u.world_to_tex * vec4<f32>(eye, 1.0)).xyz;
    var v = (u.world_to_tex * vec4<f32>(dir, 0.0)).xyz;
    v = select(v, vec3<f32>(1.0e-9), abs(v) < vec3<f32>(1.0e-9));
    let a = (vec3<f32>(0.0) - o) / v;
    let b = (vec3<f32>(1.0) - o) / v;
    let t0 = max(max(max(min(a.x, b.x), min(a.y, b.y)), min(a.z, b.z)), 0.0);
    let t1 = min(min(min(max(a.x, b.x), max(a.y, b.y)), max(a.z, b.z)), t_stop);
    if (t1 <= t0) {
        return vec4<f32>(0.0);
    }

    let step = u.eye.w;
    // a per-pixel offset of up to one step breaks the wood-grain pattern of a fixed start
    let jitter = fract(sin(dot(floor(in.clip.xy), vec2<f32>(12.9898, 78.233))) * 43758.547);
    var t = t0 + jitter * step;
    var acc = vec4<f32>(0.0);
    let max_steps = i32(u.voxel.w);
    let bdims = vec3<i32>(textureDimensions(bricks));
    // texture coordinates → brick coordinates
    let to_brick = 1.0 / (u.voxel.xyz * u.skip.y);
    for (var n = 0; n < max_steps; n++) {
        if (t >= t1) {
            break;
        }
        let p = o + v * t;
        // empty-space skipping: leave a transparent brick in one go, on the step lattice
        let bp = p * to_brick;
        let b = clamp(vec3<i32>(floor(bp)), vec3<i32>(0), bdims - 1);
        if (textureLoad(bricks, b, 0).r <= u.skip.x) {
            let lo = (vec3<f32>(b) / to_brick - o) / v;
            let hi = ((vec3<f32>(b) + 1.0) / to_brick - o) / v;
            let exit = min(min(max(lo.x, hi.x), max(lo.y, hi.y)), max(lo.z, hi.z));
            t += max(ceil((exit - t) / step), 1.0) * step;
            continue;
        }
        let c = classify(sample_hu(p));
        if (c.a > 0.0) {
            let alpha = 1.0 - pow(max(1.0 - c.a, 0.0), u.forward.w);
            var rgb = c.rgb;
            if (u.tf.w > 0.5) {
                // headlight on the HU gradient (central differences), lit from both sides
                let e = u.voxel.xyz;
                let g = vec3<f32>(
                    sample_hu(p + vec3<f32>(e.x, 0.0, 0.0)) - sample_hu(p - vec3<f32>(e.x, 0.0, 0.0)),
                    sample_hu(p + vec3<f32>(0.0, e.y, 0.0)) - sample_hu(p - vec3<f32>(0.0, e.y, 0.0)),
                    sample_hu(p + vec3<f32>(0.0, 0.0, e.z)) - sample_hu(p - vec3<f32>(0.0, 0.0, e.z)),
                );
                // texture-space gradient to world: transpose of the linear part
                let m = mat3x3<f32>(u.world_to_tex[0].xyz, u.world_to_tex[1].xyz, u.world_to_tex[2].xyz);
                let gw = transpose(m) * (g / (2.0 * e));
                let len = length(gw);
                if (len > 20.0) {
                    let ndv = abs(dot(gw / len, dir));
                    rgb = rgb * (0.35 + 0.65 * ndv) + vec3<f32>(0.2 * pow(ndv, 24.0));
                }
            }
            acc += vec4<f32>(min(rgb, vec3<f32>(1.0)) * alpha, alpha) * (1.0 - acc.a);
            if (acc.a > 0.98) {
                break;
            }
        }
        t += step;
    }
    return acc;
}

// ---- composite the march target over the view ------------------------------------------

// Its own bind group layout: the march target and the linear sampler (binding 2).
@group(0) @binding(5) var marched: texture_2d<f32>;

@fragment
fn fs_composite(in: FullOut) -> @location(0) vec4<f32> {
    return textureSampleLevel(marched, linear, in.uv, 0.0);
}
