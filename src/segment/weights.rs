//! U-Net weights on disk: one safetensors file holding every tensor of the network plus a
//! `hepaview.config` tensor that records its shape and pixel size, so a file says what it
//! is and a wrong file is refused with the reason instead of giving nonsense masks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::model::{UNet, UNetConfig};
use super::SegmentError;

/// Where the shipped model lives, relative to the repository / install folder.
pub const DEFAULT_MODEL: &str = "models/unet.safetensors";
/// Name of the config tensor: `[format, in_channels, classes, spacing_mm, n_levels,
/// features…]`, then in format 2 `[any_phase_subset]` (0 or 1).
pub const CONFIG_TENSOR: &str = "hepaview.config";
/// Format 1: a network fed portal venous in every sample. Format 2 adds how its phases
/// are fed; a format-1 network is written as format 1, so older readers still read it.
const FORMAT: f32 = 1.0;
const FORMAT_SUBSETS: f32 = 2.0;

fn config_tensor(cfg: &UNetConfig) -> candle_core::Result<Tensor> {
    let format = if cfg.any_phase_subset { FORMAT_SUBSETS } else { FORMAT };
    let mut v =
        vec![format, cfg.in_channels as f32, cfg.classes as f32, cfg.spacing_mm as f32, cfg.features.len() as f32];
    v.extend(cfg.features.iter().map(|&f| f as f32));
    if cfg.any_phase_subset {
        v.push(1.0);
    }
    let n = v.len();
    Tensor::from_vec(v, n, &Device::Cpu)
}

fn config_from_tensor(t: &Tensor, path: &Path) -> Result<UNetConfig, SegmentError> {
    let bad = |why: String| SegmentError::WeightsMismatch { path: path.to_path_buf(), detail: why };
    let v: Vec<f32> = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(|e| bad(format!("{CONFIG_TENSOR} unreadable: {e}")))?;
    if v.len() < 5 || (v[0] != FORMAT && v[0] != FORMAT_SUBSETS) {
        return Err(bad(format!("{CONFIG_TENSOR} is not format {FORMAT} or {FORMAT_SUBSETS} (got {v:?})")));
    }
    let n = v[4] as usize;
    let extra = usize::from(v[0] == FORMAT_SUBSETS);
    if v.len() != 5 + n + extra || n == 0 {
        return Err(bad(format!("{CONFIG_TENSOR} lists {n} levels but holds {} numbers", v.len())));
    }
    Ok(UNetConfig {
        in_channels: v[1] as usize,
        classes: v[2] as usize,
        spacing_mm: v[3] as f64,
        features: v[5..5 + n].iter().map(|&f| f as usize).collect(),
        any_phase_subset: extra == 1 && v[5 + n] != 0.0,
    })
}

/// Writes every variable of `varmap` (the network built from `cfg`) and the config tensor.
pub fn save_unet(varmap: &VarMap, cfg: &UNetConfig, path: &Path) -> Result<(), SegmentError> {
    let io = |e: String| SegmentError::WeightsWrite { path: path.to_path_buf(), detail: e };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    {
        let data = varmap.data().lock().map_err(|_| io("variable map poisoned".into()))?;
        for (name, var) in data.iter() {
            tensors.insert(name.clone(), var.as_tensor().detach());
        }
    }
    tensors.insert(CONFIG_TENSOR.into(), config_tensor(cfg).map_err(|e| io(e.to_string()))?);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(e.to_string()))?;
    }
    // Write beside and rename, so a crash mid-write never leaves a half file at `path`.
    let tmp = path.with_extension("safetensors.partial");
    candle_core::safetensors::save(&tensors, &tmp).map_err(|e| io(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| io(e.to_string()))
}

/// The names and shapes a network of `cfg` has (from building it on fresh variables).
pub fn expected_tensors(cfg: &UNetConfig) -> Result<Vec<(String, Vec<usize>)>, SegmentError> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    UNet::new(vb, cfg).map_err(|e| SegmentError::Model(e.to_string()))?;
    let data = vm.data().lock().map_err(|_| SegmentError::Model("variable map poisoned".into()))?;
    let mut v: Vec<(String, Vec<usize>)> = data.iter().map(|(k, t)| (k.clone(), t.dims().to_vec())).collect();
    v.sort();
    Ok(v)
}

/// Loads a model file: checks that it exists, has a config, and that every tensor the
/// network needs is there with the right shape and nothing else is (a file from another
/// network); any difference is an error naming the file and the tensors.
pub fn load_unet(path: &Path) -> Result<UNet, SegmentError> {
    let (cfg, tensors) = read_checkpoint(path)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    UNet::new(vb, &cfg).map_err(|e| SegmentError::WeightsMismatch { path: path.to_path_buf(), detail: e.to_string() })
}

/// A model file's configuration and tensors (by variable name), checked as [`load_unet`]
/// checks them; for loading, and for training that starts from saved weights.
pub fn read_checkpoint(path: &Path) -> Result<(UNetConfig, HashMap<String, Tensor>), SegmentError> {
    if !path.is_file() {
        return Err(SegmentError::WeightsMissing { path: path.to_path_buf() });
    }
    let mismatch = |detail: String| SegmentError::WeightsMismatch { path: path.to_path_buf(), detail };
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| mismatch(format!("not a readable safetensors file: {e}")))?;
    let cfg_t = tensors
        .remove(CONFIG_TENSOR)
        .ok_or_else(|| mismatch(format!("no `{CONFIG_TENSOR}` tensor; it was not written by `hepaview train`")))?;
    let cfg = config_from_tensor(&cfg_t, path)?;
    let expected = expected_tensors(&cfg)?;
    let mut problems = Vec::new();
    for (name, shape) in &expected {
        match tensors.get(name) {
            None => problems.push(format!("missing {name} {shape:?}")),
            Some(t) if t.dims() != shape.as_slice() => {
                problems.push(format!("{name} is {:?}, expected {shape:?}", t.dims()))
            }
            Some(t) if t.dtype() != DType::F32 => problems.push(format!("{name} is {:?}, expected f32", t.dtype())),
            _ => {}
        }
    }
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !expected.iter().any(|(n, _)| n == *k)).collect();
    extra.sort();
    for k in extra {
        problems.push(format!("unexpected {k}"));
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(6);
        return Err(mismatch(format!("{n} tensor(s) do not fit a U-Net {:?}: {}", cfg.features, problems.join("; "))));
    }
    Ok((cfg, tensors))
}

/// `models/unet.safetensors` next to the executable's repository, else relative to the
/// current folder: the shipped model when the user names none.
pub fn default_model_path() -> PathBuf {
    let here = PathBuf::from(DEFAULT_MODEL);
    if here.is_file() {
        return here;
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL);
    if manifest.is_file() {
        manifest
    } else {
        here
    }
}
