//! flow type names and how they map to Arrow types.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use flow_lang::ast::{TypeKind, TypeName};

/// The Arrow type a flow type name stands for.
pub fn arrow_type(ty: &TypeName) -> Result<DataType, String> {
    match &ty.kind {
        TypeKind::Decimal(p, s) => {
            if !(1..=38).contains(&p.value) || s.value < 0 || s.value > p.value {
                return Err(format!(
                    "decimal({}, {}) needs 1 <= precision <= 38 and 0 <= scale <= precision",
                    p.value, s.value
                ));
            }
            Ok(DataType::Decimal128(p.value as u8, s.value as i8))
        }
        TypeKind::Named(name) => Ok(match name.as_str() {
            "bool" => DataType::Boolean,
            "int8" => DataType::Int8,
            "int16" => DataType::Int16,
            "int32" => DataType::Int32,
            "int64" => DataType::Int64,
            "uint8" => DataType::UInt8,
            "uint16" => DataType::UInt16,
            "uint32" => DataType::UInt32,
            "uint64" => DataType::UInt64,
            "float32" => DataType::Float32,
            "float64" => DataType::Float64,
            "string" => DataType::Utf8,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
            other => {
                // Names other languages use, with what flow calls them: `int` is closest to
                // `int8` by spelling but means `int64` to nearly everyone who writes it.
                let usual = match other {
                    "int" | "integer" | "long" | "bigint" => Some("int64"),
                    "float" | "double" | "real" => Some("float64"),
                    "str" | "text" | "varchar" => Some("string"),
                    "boolean" => Some("bool"),
                    "datetime" => Some("timestamp"),
                    _ => None,
                };
                let hint = match usual {
                    Some(ours) => format!("; flow calls it `{ours}`"),
                    None => flow_lang::diagnostic::suggest::did_you_mean(
                        other,
                        TYPE_NAMES.iter().copied(),
                    )
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default(),
                };
                return Err(format!(
                    "unknown type `{other}`{hint} (types: {})",
                    TYPE_NAMES.join(", ")
                ));
            }
        }),
    }
}

pub const TYPE_NAMES: &[&str] = &[
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "string",
    "date",
    "timestamp",
    "decimal",
];

/// The flow name of an Arrow type, as shown in messages.
pub fn display(ty: &DataType) -> String {
    match ty {
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "float16".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p}, {s})"),
        DataType::Null => "null".into(),
        DataType::Interval(_) => "interval".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", display(f.data_type())),
        other => other.to_string().to_lowercase(),
    }
}

/// Broad families of types, which decide what operators accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Numeric,
    Text,
    Bool,
    Temporal,
    Interval,
    Null,
    Other,
}

pub fn family(ty: &DataType) -> Family {
    match ty {
        t if t.is_numeric() => Family::Numeric,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Family::Text,
        DataType::Boolean => Family::Bool,
        DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(_, _)
        | DataType::Time32(_)
        | DataType::Time64(_) => Family::Temporal,
        DataType::Interval(_) | DataType::Duration(_) => Family::Interval,
        DataType::Null => Family::Null,
        _ => Family::Other,
    }
}

/// Whether values of the two types can be compared with `==`, `<`, ... or unioned.
pub fn comparable(a: &DataType, b: &DataType) -> bool {
    let (fa, fb) = (family(a), family(b));
    fa == fb
        || fa == Family::Null
        || fb == Family::Null
        || matches!(
            (fa, fb),
            (Family::Temporal, Family::Text) | (Family::Text, Family::Temporal)
        )
}
