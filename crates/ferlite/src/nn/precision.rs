//! The number format of the classifier's products at inference (`--precision`), and which CPUs
//! run each.

/// The number format of the networks' matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 throughout: the same answers on every CPU.
    #[default]
    F32,
    /// bfloat16 operands, f32 sums: about twice as fast; needs a CPU with AVX-512 BF16.
    /// Transforms, sums and everything else stay f32 (docs/performance.md).
    Bf16,
    /// 8-bit activations and weights, exact 32-bit sums (`crate::int8`): fast with AVX-512 VNNI or
    /// AVX-VNNI, runs (slower than f32) on AVX2 alone; the model file must carry activation ranges
    /// (`ferlite calibrate`).
    Int8,
}

impl Precision {
    /// An error when this CPU cannot run this precision.
    pub fn check(self) -> anyhow::Result<()> {
        match self {
            Precision::F32 => {}
            Precision::Bf16 if !super::bf16::available() => anyhow::bail!(
                "--precision bf16 needs a CPU with AVX-512 BF16 (AMD Zen 4 or later, Intel Cooper Lake or Sapphire Rapids or later) and FERLITE_SIMD not off; this one cannot: use f32"
            ),
            Precision::Bf16 => {}
            Precision::Int8 if super::qgemm::Isa::detect().is_none() => anyhow::bail!(
                "--precision int8 needs a CPU with AVX2 (and is fast with AVX-512 VNNI or AVX-VNNI) and FERLITE_SIMD not off; this one cannot: use f32"
            ),
            Precision::Int8 => {}
        }
        Ok(())
    }
}
