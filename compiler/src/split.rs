//! The seeded row hash behind `split`: a scalar function of a row's values that maps each row
//! to a number in [0, 1). It depends only on the row's contents and the seed, never on how the
//! table is partitioned or ordered, so a split is the same on one worker or on many.

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

/// `flow_split_hash(seed, col, ...)`: a uniform number in [0, 1) per row.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SplitHash {
    signature: Signature,
}

impl SplitHash {
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(SplitHash {
            signature: Signature::variadic_any(Volatility::Immutable),
        }))
    }
}

/// SplitMix64's finaliser: spreads the bits of a 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The unit-interval value of one encoded row under a seed.
pub fn unit_hash(seed: u64, bytes: &[u8]) -> f64 {
    // FNV-1a over the row's bytes, then mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let h = mix(h ^ mix(seed.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl ScalarUDFImpl for SplitHash {
    fn name(&self) -> &str {
        "flow_split_hash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let mut values = args.args.into_iter();
        let seed = match values.next() {
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(s)))) => s as u64,
            _ => return exec_err!("flow_split_hash needs an integer seed first"),
        };
        let arrays: Vec<ArrayRef> = values.map(|v| v.into_array(rows)).collect::<Result<_>>()?;
        let fields = arrays
            .iter()
            .map(|a| SortField::new(a.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        let encoded = converter.convert_columns(&arrays)?;
        let out: Float64Array = (0..rows)
            .map(|i| Some(unit_hash(seed, encoded.row(i).as_ref())))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_uniform_enough_and_seeded() {
        let n = 10_000;
        let below = (0..n)
            .filter(|i| unit_hash(7, &(*i as u64).to_le_bytes()) < 0.8)
            .count();
        assert!((7_700..8_300).contains(&below), "{below}");
        assert_ne!(unit_hash(1, b"row"), unit_hash(2, b"row"));
        assert_eq!(unit_hash(1, b"row"), unit_hash(1, b"row"));
    }
}
