//! Shipping plans: datafusion-proto serialises the standard operators; this codec adds the
//! one operator of ours, [`ExchangeReadExec`].

use super::channels::Location;
use super::exchange::{ExchangeReadExec, ReadKind};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
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
        _inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let wire: ReaderWire = serde_json::from_slice(buf)
            .map_err(|e| DataFusionError::Internal(format!("bad exchange reader: {e}")))?;
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

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(reader) = node.downcast_ref::<ExchangeReadExec>() else {
            return Err(DataFusionError::NotImplemented(format!(
                "flow cannot ship the operator {} to a worker",
                node.name()
            )));
        };
        let wire = ReaderWire {
            stage: reader.stage,
            kind: reader.kind,
            locations: reader.locations.clone(),
            schema: schema_bytes(&node.schema())?,
        };
        serde_json::to_writer(buf, &wire).map_err(|e| DataFusionError::Internal(e.to_string()))
    }
}

/// A plan as bytes for a worker.
pub fn encode(plan: Arc<dyn ExecutionPlan>) -> Result<Vec<u8>> {
    Ok(
        datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec(plan, &FlowCodec)?
            .to_vec(),
    )
}

/// A plan from [`encode`]'s bytes.
pub fn decode(bytes: &[u8], ctx: &TaskContext) -> Result<Arc<dyn ExecutionPlan>> {
    datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec(bytes, ctx, &FlowCodec)
}
