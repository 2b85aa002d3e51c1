//! Shipping plans: datafusion-proto serialises the standard operators; this codec adds ours,
//! [`ExchangeReadExec`] and [`InferExec`] (with its model). Each is one tag byte, then its
//! wire form: JSON for a reader; for `infer` a JSON header, a newline, and the model file.

use super::channels::Location;
use super::exchange::{ExchangeReadExec, ReadKind};
use crate::ml::AnyModel;
use crate::ml::scored::InferExec;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The codec of flow's own operators.
#[derive(Debug, Default)]
pub struct FlowCodec;

#[derive(Serialize, Deserialize)]
struct ReaderWire {
    stage: usize,
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
                    wire.stage,
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
                let model = AnyModel::from_wire(wire.onnx, rest[newline + 1..].to_vec())
                    .map_err(|e| bad("model", &e))?;
                let [input] = inputs else {
                    return Err(bad("inference step", &"it needs exactly one input"));
                };
                Ok(Arc::new(InferExec::new(
                    input.clone(),
                    Arc::new(model),
                    wire.batch,
                    schema_from(&wire.schema)?,
                )))
            }
            _ => Err(bad("operator", &"unknown tag")),
        }
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

/// A plan as bytes for a worker.
pub fn encode(plan: Arc<dyn ExecutionPlan>) -> Result<Vec<u8>> {
    Ok(
        datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec(plan, &FlowCodec)?
            .to_vec(),
    )
}

/// A plan from [`encode`]'s bytes, its Parquet scans reading footers through `ctx`'s metadata
/// cache.
pub fn decode(bytes: &[u8], ctx: &TaskContext) -> Result<Arc<dyn ExecutionPlan>> {
    let plan = datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec(
        bytes, ctx, &FlowCodec,
    )?;
    cached_footers(plan, ctx)
}

/// The plan with every Parquet scan reading footers (and page indexes) through the process's
/// metadata cache. DataFusion attaches the cache when it plans a scan, but the reader factory
/// does not travel with a plan: without this, each task a worker runs over a file would read
/// and parse the file's footer again (about 1 ms for TPC-H's `lineitem`).
fn cached_footers(
    plan: Arc<dyn ExecutionPlan>,
    ctx: &TaskContext,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(Transformed::no(node));
        };
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
        let config = FileScanConfigBuilder::from(config.clone())
            .with_source(Arc::new(source))
            .build();
        Ok(Transformed::yes(
            DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
        ))
    })
    .map(|t| t.data)
}
