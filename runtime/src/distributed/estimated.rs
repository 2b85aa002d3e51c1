//! What DataFusion is told of a file scan's size while a stage is planned: the planner's
//! estimate of what one task scans. DataFusion picks a join's build side by its inputs'
//! statistics; a CSV or JSON file says nothing of its size, and a Parquet file speaks for
//! the whole file while a task reads its share. Without this a task built its hash table on
//! the ten million rows it scanned rather than on the hundred thousand broadcast to it.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Statistics, stats::Precision};
use datafusion::datasource::TableType;
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

/// A source table whose scans carry an estimate of their size.
#[derive(Debug)]
pub struct Estimated {
    /// The table as the compiler registered it.
    pub inner: Arc<dyn TableProvider>,
    /// Rows one task scans.
    pub rows: f64,
    /// Bytes one task scans.
    pub bytes: f64,
}

#[async_trait::async_trait]
impl TableProvider for Estimated {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        let Some(config) = plan
            .downcast_ref::<DataSourceExec>()
            .and_then(|scan| scan.data_source().downcast_ref::<FileScanConfig>())
        else {
            return Ok(plan);
        };
        let mut statistics = Statistics::new_unknown(config.file_schema());
        statistics.num_rows = Precision::Inexact(self.rows.max(0.0) as usize);
        statistics.total_byte_size = Precision::Inexact(self.bytes.max(0.0) as usize);
        let config = FileScanConfigBuilder::from(config.clone())
            .with_statistics(statistics)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
