//! Shipping plans: datafusion-proto serialises the standard operators; this codec adds ours,
//! [`ExchangeReadExec`] and [`InferExec`] (with its model), and the one function that carries
//! data of its own, `tokenize` (its length, 4 bytes little-endian, then the tokenizer file). Each is one tag byte, then its
//! wire form: JSON for a reader; for `infer` a JSON header, a newline, and the model file.
//!
//! A shipped plan is the length of a JSON header (4 bytes, little-endian), the header, then
//! the plan's protobuf bytes. The header holds what datafusion-proto drops: the row selections
//! of the files a task reads part of ([`super::row_groups`]).

use super::channels::Location;
use super::exchange::{ExchangeReadExec, ReadKind};
use super::loaded_models;
use super::row_groups::parquet_scan;
use crate::ml::scored::InferExec;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetRowSelection,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use flow_compiler::tokenize::Tokenize;
use flow_stdlib::text::Tokenizer;
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The codec of flow's own operators.
#[derive(Debug, Default)]
pub struct FlowCodec;

#[derive(Serialize, Deserialize)]
struct ReaderWire {
    stage: usize,
    output: usize,
    kind: ReadKind,
    locations: Vec<Vec<Location>>,
    /// The schema as an empty Arrow IPC stream.
    schema: Vec<u8>,
}

const READER: u8 = 0;
const INFER: u8 = 1;

#[derive(Serialize, Deserialize)]
struct InferWire {
    onnx: bool,
    batch: Option<usize>,
    /// The scored schema as an empty Arrow IPC stream.
    schema: Vec<u8>,
}

fn schema_bytes(schema: &Schema) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, schema)?;
    w.finish()?;
    drop(w);
    Ok(buf)
}

fn schema_from(bytes: &[u8]) -> Result<SchemaRef> {
    Ok(StreamReader::try_new(std::io::Cursor::new(bytes), None)?.schema())
}

impl PhysicalExtensionCodec for FlowCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            DataFusionError::Internal(format!("bad {what} in a shipped plan: {e}"))
        };
        match buf.split_first() {
            Some((&READER, rest)) => {
                let wire: ReaderWire =
                    serde_json::from_slice(rest).map_err(|e| bad("exchange reader", &e))?;
                let schema = schema_from(&wire.schema)?;
                let reader = ExchangeReadExec::new(
                    (wire.stage, wire.output),
                    wire.kind,
                    wire.locations.len(),
                    schema.clone(),
                    EquivalenceProperties::new(schema),
                );
                Ok(Arc::new(reader.with_locations(wire.locations)))
            }
            Some((&INFER, rest)) => {
                let newline = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
                let wire: InferWire = serde_json::from_slice(&rest[..newline])
                    .map_err(|e| bad("inference step", &e))?;
                let bytes = rest.get(newline + 1..).unwrap_or_default();
                let model = loaded_models::load(wire.onnx, bytes).map_err(|e| bad("model", &e))?;
                let [input] = inputs else {
                    return Err(bad("inference step", &"it needs exactly one input"));
                };
                Ok(Arc::new(InferExec::new(
                    input.clone(),
                    model,
                    wire.batch,
                    schema_from(&wire.schema)?,
                )))
            }
            _ => Err(bad("operator", &"unknown tag")),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        let inner: &dyn std::any::Any = node.inner().as_ref();
        if let Some(tokenize) = inner.downcast_ref::<Tokenize>() {
            let length = u32::try_from(tokenize.length)
                .map_err(|_| DataFusionError::Internal("a tokenize length is too long".into()))?;
            buf.extend_from_slice(&length.to_le_bytes());
            buf.extend_from_slice(&tokenize.tokenizer.bytes);
        }
        Ok(())
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        let (Tokenize::NAME, Some((length, bytes))) = (name, buf.split_first_chunk::<4>()) else {
            return Err(DataFusionError::Internal(format!(
                "a shipped plan calls `{name}`, which flow cannot rebuild"
            )));
        };
        let tokenizer = loaded_tokenizer(bytes)?;
        Ok(Arc::new(Tokenize::udf(
            tokenizer,
            u32::from_le_bytes(*length) as usize,
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let internal = |e: serde_json::Error| DataFusionError::Internal(e.to_string());
        if let Some(reader) = node.downcast_ref::<ExchangeReadExec>() {
            let wire = ReaderWire {
                stage: reader.stage,
                output: reader.output,
                kind: reader.kind,
                locations: reader.locations.clone(),
                schema: schema_bytes(&node.schema())?,
            };
            buf.push(READER);
            return serde_json::to_writer(buf, &wire).map_err(internal);
        }
        if let Some(infer) = node.downcast_ref::<InferExec>() {
            let (onnx, model) = infer.model.to_wire();
            let wire = InferWire {
                onnx,
                batch: infer.batch,
                schema: schema_bytes(&node.schema())?,
            };
            buf.push(INFER);
            serde_json::to_writer(&mut *buf, &wire).map_err(internal)?;
            buf.push(b'\n');
            buf.extend_from_slice(&model);
            return Ok(());
        }
        Err(DataFusionError::NotImplemented(format!(
            "flow cannot ship the operator {} to a worker",
            node.name()
        )))
    }
}

/// The tokenizer of a shipped `tokenize` call: read once per process, as models are.
fn loaded_tokenizer(bytes: &[u8]) -> Result<Arc<Tokenizer>> {
    static KEPT: std::sync::Mutex<Vec<Arc<Tokenizer>>> = std::sync::Mutex::new(Vec::new());
    let mut kept = KEPT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(t) = kept.iter().find(|t| t.bytes.as_slice() == bytes) {
        return Ok(t.clone());
    }
    let tokenizer = Tokenizer::from_bytes(bytes.to_vec(), "the shipped tokenizer")
        .map(Arc::new)
        .map_err(DataFusionError::Internal)?;
    if kept.len() == 4 {
        kept.remove(0);
    }
    kept.push(tokenizer.clone());
    Ok(tokenizer)
}

/// The row selections of the files a plan's Parquet scans read: per scan (in the order a
/// traversal of the plan meets them), per file group, per file, the selectors as `(skip,
/// rows)` pairs, or none for a file read in full. Empty when no file has one.
type Selections = Vec<Vec<Vec<Option<Vec<(bool, usize)>>>>>;

fn selections(plan: &Arc<dyn ExecutionPlan>) -> Result<Selections> {
    let mut scans: Selections = Vec::new();
    let mut any = false;
    plan.apply(|node| {
        if let Some(config) = parquet_scan(node) {
            let groups = config.file_groups.iter().map(|group| {
                group
                    .iter()
                    .map(|file| {
                        let selection = file.extension::<ParquetRowSelection>()?;
                        any = true;
                        Some(
                            selection
                                .selection()
                                .iter()
                                .map(|s| (s.skip, s.row_count))
                                .collect(),
                        )
                    })
                    .collect()
            });
            scans.push(groups.collect());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(if any { scans } else { Vec::new() })
}

/// A plan as bytes for a worker.
pub fn encode(plan: Arc<dyn ExecutionPlan>) -> Result<Vec<u8>> {
    let header = serde_json::to_vec(&selections(&plan)?)
        .map_err(|e| DataFusionError::Internal(e.to_string()))?;
    let proto =
        datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec(plan, &FlowCodec)?;
    let length = u32::try_from(header.len())
        .map_err(|_| DataFusionError::Internal("a plan's row selections are too long".into()))?;
    let mut bytes = Vec::with_capacity(4 + header.len() + proto.len());
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&proto);
    Ok(bytes)
}

/// A plan from [`encode`]'s bytes, its Parquet scans reading footers through `ctx`'s metadata
/// cache.
pub fn decode(bytes: &[u8], ctx: &TaskContext) -> Result<Arc<dyn ExecutionPlan>> {
    let bad = |e: &dyn std::fmt::Display| {
        DataFusionError::Internal(format!("bad row selections in a shipped plan: {e}"))
    };
    let (length, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| bad(&"the plan is cut short"))?;
    let length = u32::from_le_bytes(*length) as usize;
    if rest.len() < length {
        return Err(bad(&"the plan is cut short"));
    }
    let (header, proto) = rest.split_at(length);
    let selections: Selections = serde_json::from_slice(header).map_err(|e| bad(&e))?;
    let plan = datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec(
        proto, ctx, &FlowCodec,
    )?;
    prepare_scans(plan, ctx, &selections)
}

/// The plan with every Parquet scan reading footers (and page indexes) through the process's
/// metadata cache and its files limited to the rows `selections` gives them. DataFusion
/// attaches the cache when it plans a scan, but the reader factory does not travel with a
/// plan: without this, each task a worker runs over a file would read and parse the file's
/// footer again (about 1 ms for TPC-H's `lineitem`).
fn prepare_scans(
    plan: Arc<dyn ExecutionPlan>,
    ctx: &TaskContext,
    selections: &Selections,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mismatch =
        || DataFusionError::Internal("a shipped plan's row selections do not fit its scans".into());
    let mut scans = 0;
    let plan = plan.transform_up(|node| {
        let Some(config) = parquet_scan(&node) else {
            return Ok(Transformed::no(node));
        };
        let mut config = config.clone();
        if let Some(groups) = selections.get(scans) {
            if groups.len() != config.file_groups.len() {
                return Err(mismatch());
            }
            let mut selected = Vec::with_capacity(groups.len());
            for (group, files) in config.file_groups.iter().zip(groups) {
                if group.len() != files.len() {
                    return Err(mismatch());
                }
                let members = group
                    .iter()
                    .zip(files)
                    .map(|(file, selectors)| match selectors {
                        Some(selectors) => {
                            let selectors: Vec<RowSelector> = selectors
                                .iter()
                                .map(|&(skip, rows)| {
                                    if skip {
                                        RowSelector::skip(rows)
                                    } else {
                                        RowSelector::select(rows)
                                    }
                                })
                                .collect();
                            file.clone().with_extension(ParquetRowSelection::new(
                                RowSelection::from(selectors),
                            ))
                        }
                        None => file.clone(),
                    });
                selected.push(FileGroup::new(members.collect()));
            }
            config.file_groups = selected;
        }
        scans += 1;
        let Some(source) = config.file_source().downcast_ref::<ParquetSource>() else {
            return Ok(Transformed::no(node));
        };
        let runtime = ctx.runtime_env();
        let factory = CachedParquetFileReaderFactory::new(
            runtime.object_store(&config.object_store_url)?,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let source = source
            .clone()
            .with_parquet_file_reader_factory(Arc::new(factory));
        let config = FileScanConfigBuilder::from(config)
            .with_source(Arc::new(source))
            .build();
        Ok(Transformed::yes(
            DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
        ))
    })?;
    if !selections.is_empty() && scans != selections.len() {
        return Err(mismatch());
    }
    Ok(plan.data)
}
