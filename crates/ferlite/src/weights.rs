//! Saving and loading networks as safetensors: one tensor per named slot (`stage2.a.conv.weight`),
//! the network config as JSON in the header metadata, so a weights file says what it is.
//! Every write is atomic (temp file, fsync, rename, fsync of the folder): a crash mid-write leaves
//! the old file intact. Every file carries a CRC-32 of its tensors and metadata, checked on load,
//! so a file damaged after it was written (a flipped bit, a bad copy) is refused, not used.

use crate::int8::ACTIVATION_RANGES_KEY;
use crate::model::{Network, NetworkConfig};
use crate::nn::params::Layout;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

pub const NETWORK_KEY: &str = "ferlite.network";
pub const FORMAT_KEY: &str = "format";
pub const FORMAT: &str = "ferlite-weights-1";
/// Metadata key of the CRC-32 (hex) over the file's tensors and other metadata ([`checksum`]).
pub const CHECKSUM_KEY: &str = "ferlite.crc32";

/// Named f32 tensors plus string metadata: the content of a weights or checkpoint file.
#[derive(Default)]
pub struct TensorFile {
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let bytes: Vec<Vec<u8>> = self.tensors.iter().map(|(_, _, v)| v.iter().flat_map(|f| f.to_le_bytes()).collect()).collect();
        let views = self
            .tensors
            .iter()
            .zip(&bytes)
            .map(|((name, shape, _), b)| Ok((name.clone(), TensorView::new(Dtype::F32, shape.clone(), b)?)))
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
        let stored = self.tensors.iter().zip(&bytes).map(|((name, shape, _), b)| (name.as_str(), shape.as_slice(), b.as_slice()));
        let mut metadata = self.metadata.clone();
        metadata.insert(CHECKSUM_KEY.into(), format!("{:08x}", checksum(stored, &self.metadata)));
        Ok(safetensors::tensor::serialize(views, Some(metadata))?)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(bytes).context("not a safetensors file")?;
        let st = SafeTensors::deserialize(bytes).context("corrupt safetensors file")?;
        let views = st.tensors();
        let mut metadata = meta.metadata().clone().unwrap_or_default();
        // Files written before 2026-12-02 have no checksum; they load as before.
        if let Some(stored) = metadata.remove(CHECKSUM_KEY) {
            let computed = format!("{:08x}", checksum(views.iter().map(|(name, v)| (name.as_str(), v.shape(), v.data())), &metadata));
            if stored != computed {
                bail!("damaged file: its checksum does not match its contents (stored crc32 {stored}, computed {computed})");
            }
        }
        let mut tensors = Vec::new();
        for (name, view) in views {
            if view.dtype() != Dtype::F32 {
                bail!("tensor `{name}` has dtype {:?}, expected F32", view.dtype());
            }
            let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            tensors.push((name, view.shape().to_vec(), values));
        }
        Ok(TensorFile { tensors, metadata })
    }

    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads a safetensors file, no more of it than its header says it holds: the header's length
    /// and the end of its last tensor are checked before the rest is read, so `/dev/zero` or a
    /// huge file that is not a model costs nothing.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = read_safetensors_bytes(path).with_context(|| format!("{}: cannot read", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("{}: cannot load", path.display()))
    }

    /// Adds the slots of `layout` read from `values`, with `prefix` before each name.
    pub fn push_layout(&mut self, prefix: &str, layout: &Layout, values: &[f32]) {
        for spec in &layout.specs {
            self.tensors.push((format!("{prefix}{}", spec.name), spec.shape.clone(), spec.slot.of(values).to_vec()));
        }
    }

    /// Fills `values` from the tensors named by `layout` (with `prefix`), checking every shape.
    pub fn read_layout(&self, prefix: &str, layout: &Layout, values: &mut [f32]) -> Result<()> {
        let by_name: HashMap<&str, (&Vec<usize>, &Vec<f32>)> = self.tensors.iter().map(|(n, s, v)| (n.as_str(), (s, v))).collect();
        for spec in &layout.specs {
            let name = format!("{prefix}{}", spec.name);
            let (shape, data) = by_name.get(name.as_str()).with_context(|| format!("tensor `{name}` is missing"))?;
            if **shape != spec.shape {
                bail!("tensor `{name}` has shape {shape:?}, the network expects {:?}", spec.shape);
            }
            if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
                // Weights of a diverged run: every prediction would be NaN.
                bail!("tensor `{name}` holds {bad}: not trained weights");
            }
            spec.slot.of_mut(values).copy_from_slice(data);
        }
        Ok(())
    }
}

/// Largest safetensors header read (ferlite's are a few KB).
const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Largest tensor data read: a checkpoint of the widest network `NetworkConfig::check` allows.
const MAX_DATA_BYTES: u64 = 4 << 30;

fn read_safetensors_bytes(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut bytes = vec![0u8; 8];
    file.read_exact(&mut bytes).context("shorter than a safetensors header")?;
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if header_len == 0 || header_len > MAX_HEADER_BYTES {
        bail!("not a safetensors file (its header would be {header_len} bytes)");
    }
    (&mut file).take(header_len).read_to_end(&mut bytes)?;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..]).context("not a safetensors file (unreadable header)")?;
    let data_len = header
        .as_object()
        .context("not a safetensors file (header is not an object)")?
        .iter()
        .filter(|(name, _)| name.as_str() != "__metadata__")
        .filter_map(|(_, tensor)| tensor["data_offsets"][1].as_u64())
        .max()
        .unwrap_or(0);
    if data_len > MAX_DATA_BYTES {
        bail!("its header claims {data_len} bytes of tensors, more than any ferlite model or checkpoint");
    }
    (&mut file).take(data_len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// CRC-32 over the tensors (by name, with their shapes and stored little-endian bytes) and the
/// metadata (by key), so neither the order they are stored in nor the checksum's own entry
/// changes it.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [usize], &'a [u8])>, metadata: &HashMap<String, String>) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    let mut by_name: Vec<_> = tensors.collect();
    by_name.sort_by_key(|t| t.0);
    for (name, shape, data) in by_name {
        hasher.update(name.as_bytes());
        shape.iter().for_each(|d| hasher.update(&(*d as u64).to_le_bytes()));
        hasher.update(data);
    }
    let mut keys: Vec<_> = metadata.keys().filter(|k| k.as_str() != CHECKSUM_KEY).collect();
    keys.sort();
    for key in keys {
        hasher.update(key.as_bytes());
        hasher.update(&[0]);
        hasher.update(metadata[key].as_bytes());
        hasher.update(&[0]);
    }
    hasher.finalize()
}

/// Writes `bytes` to `path` via a temporary file in the same folder, synced to disk before the
/// rename and the folder synced after it, so that after a crash or power loss `path` holds the old
/// file or the new one, whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot rename into place", path.display()))?;
    sync_folder_of(path);
    Ok(())
}

/// Makes a rename in `path`'s folder durable (Unix; elsewhere the rename is what there is).
fn sync_folder_of(path: &Path) {
    #[cfg(unix)]
    if let Some(folder) = path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }) {
        // A folder that cannot be opened for syncing (unusual permissions) still has the new file.
        let _ = std::fs::File::open(folder).and_then(|f| f.sync_all());
    }
}

/// Metadata key of the validation accuracy a weights file was selected at (written by `train` into
/// `best.safetensors`, reported by `serve`'s `/v1/model`).
pub const VAL_ACCURACY_KEY: &str = "ferlite.val_accuracy";

impl Network {
    /// Parameters and batch-norm statistics, with the config in the metadata.
    pub fn to_tensor_file(&self) -> TensorFile {
        let mut file = TensorFile::default();
        file.push_layout("", &self.param_layout, &self.params);
        file.push_layout("", &self.buffer_layout, &self.buffers);
        file.metadata.insert(FORMAT_KEY.into(), FORMAT.into());
        file.metadata.insert(NETWORK_KEY.into(), serde_json::to_string(&self.config).expect("config serialises"));
        if let Some(ranges) = &self.int8_ranges {
            file.metadata.insert(ACTIVATION_RANGES_KEY.into(), serde_json::to_string(ranges).expect("numbers serialise"));
        }
        file
    }

    pub fn from_tensor_file(file: &TensorFile) -> Result<Self> {
        let config_json = file.metadata.get(NETWORK_KEY).context("no network config in the file's metadata (not a ferlite weights file?)")?;
        refuse_blurred_copy_models(config_json)?;
        let config: NetworkConfig = serde_json::from_str(config_json).context("unreadable network config")?;
        config.check().map_err(|problem| anyhow::anyhow!("network config: {problem}"))?;
        let mut net = Network::uninitialized(config);
        let (pl, bl) = (net.param_layout.clone(), net.buffer_layout.clone());
        file.read_layout("", &pl, &mut net.params)?;
        file.read_layout("", &bl, &mut net.buffers)?;
        if let Some(ranges) = file.metadata.get(ACTIVATION_RANGES_KEY) {
            net.int8_ranges = Some(serde_json::from_str(ranges).context("unreadable int8 activation ranges")?);
        }
        Ok(net)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        self.to_tensor_file().write_atomic(path)
    }

    /// Saves with the validation accuracy the weights were selected at, when it is known
    /// (`train`'s `best.safetensors`; `export --weights` passes it on).
    pub fn save_with_val_accuracy(&self, path: &Path, val_accuracy: Option<f64>) -> Result<()> {
        let mut file = self.to_tensor_file();
        if let Some(accuracy) = val_accuracy {
            file.metadata.insert(VAL_ACCURACY_KEY.into(), accuracy.to_string());
        }
        file.write_atomic(path)
    }

    pub fn load(path: &Path) -> Result<Self> {
        Self::from_tensor_file(&TensorFile::read(path)?).with_context(|| format!("{}: not a usable ferlite model", path.display()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_tensor_file(&TensorFile::from_bytes(bytes)?)
    }

    /// The weights in `path` under `config`'s regularisation, for a run that starts
    /// from an earlier model (`train --init`). The architectures must be the same.
    pub fn warm_start(path: &Path, config: NetworkConfig) -> Result<Self> {
        let mut net = Self::load(path)?;
        let (have, want) = (&net.config, &config);
        let same_shape = have.stem_channels == want.stem_channels && have.stage_channels == want.stage_channels && have.hidden_units == want.hidden_units && have.classes == want.classes;
        if !same_shape {
            bail!(
                "{}: its network (stem {}, stages {:?}, hidden {}, classes {}) differs from the run's (stem {}, stages {:?}, hidden {}, classes {})",
                path.display(),
                have.stem_channels, have.stage_channels, have.hidden_units, have.classes,
                want.stem_channels, want.stage_channels, want.hidden_units, want.classes
            );
        }
        net.config = config;
        // Training changes the weights: ranges calibrated for the old ones would mislead int8.
        net.int8_ranges = None;
        Ok(net)
    }
}

/// Models trained before 2026-12-02 learned from a blurred copy of FER2013's training split and
/// ask for every face to be blurred before it is classified (a nonzero `input_blur_sigma`).
/// ferlite no longer blurs faces, and such a model would misjudge sharp ones: refuse it.
fn refuse_blurred_copy_models(config_json: &str) -> Result<()> {
    let config: serde_json::Value = serde_json::from_str(config_json).context("unreadable network config")?;
    if config.get("input_blur_sigma").and_then(|v| v.as_f64()).is_some_and(|sigma| sigma != 0.0) {
        bail!("trained on the old blurred copy of FER2013 (it asks for an input blur, which ferlite no longer does): retrain it with `ferlite train`, or use the embedded model");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Tensor;

    #[test]
    fn save_and_load_round_trip_gives_identical_logits() {
        let tmp = tempfile::tempdir().unwrap();
        let mut net = Network::new(NetworkConfig::paper(), 3);
        net.buffers.iter_mut().enumerate().for_each(|(i, b)| *b += (i % 5) as f32 * 0.1);
        let path = tmp.path().join("m.safetensors");
        net.save(&path).unwrap();
        let back = Network::load(&path).unwrap();
        assert_eq!(back.params, net.params);
        assert_eq!(back.buffers, net.buffers);
        let x = Tensor::from_vec([1, 1, 48, 48], (0..2304).map(|i| (i as f32).sin()).collect());
        assert_eq!(back.forward(&x), net.forward(&x));
    }

    #[test]
    fn load_names_a_tensor_with_the_wrong_shape() {
        let net = Network::new(NetworkConfig::paper(), 3);
        let mut file = net.to_tensor_file();
        let t = file.tensors.iter_mut().find(|t| t.0 == "head.fc2.bias").unwrap();
        t.1 = vec![1, 7];
        let err = format!("{:#}", Network::from_tensor_file(&file).unwrap_err());
        assert!(err.contains("head.fc2.bias") && err.contains("shape"), "{err}");
    }

    #[test]
    fn a_file_that_only_claims_to_be_huge_is_refused_without_reading_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("claims.safetensors");
        let header = br#"{"a":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}}"#;
        std::fs::write(&path, [&(header.len() as u64).to_le_bytes()[..], header].concat()).unwrap();
        let err = format!("{:#}", TensorFile::read(&path).err().unwrap());
        assert!(err.contains("claims.safetensors") && err.contains("more than any ferlite model"), "{err}");
        std::fs::write(&path, u64::MAX.to_le_bytes()).unwrap();
        assert!(format!("{:#}", TensorFile::read(&path).err().unwrap()).contains("header would be"));
        #[cfg(unix)]
        assert!(format!("{:#}", TensorFile::read(Path::new("/dev/zero")).err().unwrap()).contains("not a safetensors file"));
    }

    #[test]
    fn a_file_damaged_after_it_was_written_is_refused_and_an_intact_one_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.safetensors");
        Network::new(NetworkConfig::paper(), 3).save(&path).unwrap();
        assert!(Network::load(&path).is_ok());
        let good = std::fs::read(&path).unwrap();
        // Flip one bit in the tensors' data (past the header), then one in the header's metadata.
        let header = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        for at in [header + 1000, good.len() - 3] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            let err = Network::load(&path).map(|_| ()).map_err(|e| format!("{e:#}"));
            assert!(err.as_ref().is_err_and(|e| e.contains("m.safetensors") && e.contains("checksum")), "byte {at}: {err:?}");
        }
        let text = String::from_utf8_lossy(&good[8..header]).into_owned();
        let edited = text.replace(r#"stage_dropout\":0.1"#, r#"stage_dropout\":0.2"#);
        assert_ne!(edited, text);
        std::fs::write(&path, [&good[..8], edited.as_bytes(), &good[header..]].concat()).unwrap();
        let err = Network::load(&path).map(|_| ()).map_err(|e| format!("{e:#}"));
        assert!(err.as_ref().is_err_and(|e| e.contains("checksum")), "{err:?}");
    }

    #[test]
    fn models_made_for_the_blurred_training_copy_are_refused_in_one_line() {
        let mut file = Network::new(NetworkConfig::paper(), 3).to_tensor_file();
        let config = file.metadata[NETWORK_KEY].replacen('}', r#","input_blur_sigma":3.2}"#, 1);
        file.metadata.insert(NETWORK_KEY.into(), config);
        let err = format!("{:#}", Network::from_tensor_file(&file).unwrap_err());
        assert!(err.contains("blurred copy") && !err.contains('\n'), "{err}");
        // A zero blur (runs started before the setting went) is no blur: such files load.
        let mut file = Network::new(NetworkConfig::paper(), 3).to_tensor_file();
        let zero = file.metadata[NETWORK_KEY].replacen('}', r#","input_blur_sigma":0.0}"#, 1);
        file.metadata.insert(NETWORK_KEY.into(), zero);
        assert!(Network::from_tensor_file(&file).is_ok());
    }

    #[test]
    fn warm_start_keeps_the_weights_and_takes_the_new_regularisation() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.safetensors");
        let net = Network::new(NetworkConfig::paper(), 3);
        net.save(&path).unwrap();
        let lighter = NetworkConfig { head_dropout: 0.2, stage_dropout: 0.0, ..NetworkConfig::paper() };
        let started = Network::warm_start(&path, lighter.clone()).unwrap();
        assert_eq!(started.params, net.params);
        assert_eq!(started.config, lighter);

        let wider = NetworkConfig { hidden_units: 512, ..NetworkConfig::paper() };
        let err = format!("{:#}", Network::warm_start(&path, wider).unwrap_err());
        assert!(err.contains("m.safetensors") && err.contains("hidden 380") && err.contains("hidden 512"), "{err}");
    }

    #[test]
    fn load_rejects_a_file_that_is_not_safetensors() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("junk.safetensors");
        std::fs::write(&path, b"hello").unwrap();
        let err = format!("{:#}", Network::load(&path).unwrap_err());
        assert!(err.contains("junk.safetensors"), "{err}");
    }
}
