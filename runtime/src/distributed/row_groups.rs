//! Dividing a stage's Parquet scan into tasks of whole row groups.
//!
//! DataFusion divides a scan into equal byte ranges, one per target partition, and a row group
//! belongs to the range its first page starts in — so the 16 equal row groups of TPC-H's
//! `orders` fall 9 and 7, and the 4 of `customer` 3 and 1: one worker of two works an eighth
//! longer (or three times as long) while the other waits for it at the end of the stage. Here
//! a scan keeps its number of tasks but each gets a contiguous run of whole row groups holding
//! about the same number of rows.
//!
//! A scan is re-divided only where its partitions are the stage's tasks and nothing above it
//! cares which rows each holds: row-wise operators, partial aggregation, a per-partition sort,
//! the probe side of a join whose build side is broadcast (and which emits nothing from that
//! side at the end), and the stage's own output repartition.
//!
//! The other way round, a small filtered scan that would be gathered (a broadcast join's build
//! side, say) is read whole by every task that needs it rather than cut into a stage of its own
//! ([`RowGroups::whole`]).

use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::JoinType;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{CrossJoinExec, HashJoinExec, PartitionMode};
use datafusion::physical_plan::limit::LocalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, ReplaceChildrenOptions,
};
use object_store::path::Path;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use std::collections::HashMap;
use std::sync::Arc;

use super::stages::Scans;
use crate::ml::scored::InferExec;

/// Most rows a scan under a merge may have to be read whole by every task of its consumer
/// ([`RowGroups::whole`]) — TPC-H's `customer` at scale factor 1 has 150,000.
const READ_WHOLE_MAX_ROWS: u64 = 250_000;

/// One row group: where its first column chunk starts (the offset DataFusion assigns it to a
/// range by) and its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowGroup {
    pub offset: i64,
    pub rows: u64,
}

/// The row groups of every Parquet file a plan scans.
#[derive(Debug, Default)]
pub struct RowGroups {
    files: HashMap<Path, Arc<ParquetMetaData>>,
}

/// A scan's files, each once and whole, in order, and their row groups in order: the units a
/// scan is divided into tasks by.
pub(super) struct Units {
    pub files: Vec<PartitionedFile>,
    /// (index in `files`, row group index in its file, the row group).
    pub groups: Vec<(usize, usize, RowGroup)>,
}

impl Units {
    /// One file group per task, task `t` reading the units `tasks[t]` lists (in order): a run of
    /// consecutive row groups of one file is one range of it.
    pub fn file_groups(&self, tasks: &[Vec<usize>]) -> Vec<FileGroup> {
        tasks
            .iter()
            .map(|units| {
                let mut members = Vec::new();
                let mut run: Option<(usize, usize, usize)> = None; // (file, first, last unit)
                let close = |run: Option<(usize, usize, usize)>, members: &mut Vec<_>| {
                    if let Some((file, first, last)) = run {
                        let (start, end) =
                            (self.groups[first].2.offset, self.groups[last].2.offset);
                        members.push(self.files[file].clone().with_range(start, end + 1));
                    }
                };
                for &u in units {
                    let (file, index, _) = self.groups[u];
                    run = match run {
                        Some((f, first, last)) if f == file && self.groups[last].1 + 1 == index => {
                            Some((f, first, u))
                        }
                        other => {
                            close(other, &mut members);
                            Some((file, u, u))
                        }
                    };
                }
                close(run, &mut members);
                FileGroup::new(members)
            })
            .collect()
    }
}

impl RowGroups {
    /// Reads the footers of the Parquet files `plan` scans — from the session's metadata cache,
    /// which planning the query filled.
    pub async fn of(plan: &Arc<dyn ExecutionPlan>, state: &SessionState) -> Result<RowGroups> {
        let mut files = HashMap::new();
        let mut pending = vec![plan.clone()];
        let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        while let Some(node) = pending.pop() {
            pending.extend(node.children().into_iter().cloned());
            let Some(config) = parquet_scan(&node) else {
                continue;
            };
            let store = state.runtime_env().object_store(&config.object_store_url)?;
            for file in config.file_groups.iter().flat_map(FileGroup::iter) {
                let location = &file.object_meta.location;
                if files.contains_key(location) {
                    continue;
                }
                let metadata = DFParquetMetadata::new(store.as_ref(), &file.object_meta)
                    .with_file_metadata_cache(Some(cache.clone()))
                    .fetch_metadata()
                    .await?;
                files.insert(location.clone(), metadata);
            }
        }
        Ok(RowGroups { files })
    }

    fn rewrite(
        &self,
        node: &Arc<dyn ExecutionPlan>,
        root: bool,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if let Some(config) = parquet_scan(node) {
            let tasks = node.output_partitioning().partition_count();
            // A scan DataFusion kept whole is whole for a reason (a limit or a merge above).
            if tasks < 2 {
                return Ok(None);
            }
            return Ok(self
                .divide_scan(config, tasks)
                .map(|config| DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>));
        }
        let Some(carrier) = partitions_from(node, root) else {
            return Ok(None);
        };
        let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
        let Some(divided) = self.rewrite(&children[carrier], false)? else {
            return Ok(None);
        };
        let mut children = children;
        children[carrier] = divided;
        node.clone()
            .replace_children(
                children,
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )
            .map(Some)
    }

    /// The units of a scan, or none when a file's footer is unknown.
    pub(super) fn units(&self, config: &FileScanConfig) -> Option<Units> {
        let mut files: Vec<PartitionedFile> = Vec::new();
        for file in config.file_groups.iter().flat_map(FileGroup::iter) {
            if files
                .iter()
                .all(|f| f.object_meta.location != file.object_meta.location)
            {
                let mut file = file.clone();
                file.range = None;
                files.push(file);
            }
        }
        let mut groups = Vec::new();
        for (f, file) in files.iter().enumerate() {
            let metadata = self.files.get(&file.object_meta.location)?;
            for (i, g) in metadata.row_groups().iter().enumerate() {
                // A row group without columns holds no rows.
                if g.num_columns() == 0 {
                    continue;
                }
                let first = g.column(0);
                let offset = first
                    .dictionary_page_offset()
                    .unwrap_or_else(|| first.data_page_offset());
                let rows = g.num_rows().max(0) as u64;
                groups.push((f, i, RowGroup { offset, rows }));
            }
        }
        Some(Units { files, groups })
    }

    /// Per unit, the least and greatest value of integer column `column` in it (`None` for a
    /// unit whose values are all null); `None` when a unit has no such statistics.
    pub(super) fn key_ranges(
        &self,
        units: &Units,
        column: &str,
    ) -> Option<Vec<Option<(i64, i64)>>> {
        units
            .groups
            .iter()
            .map(|&(f, i, group)| {
                let metadata = self.files.get(&units.files[f].object_meta.location)?;
                let chunk = metadata.row_group(i).columns().iter().find(|c| {
                    c.column_path().parts().len() == 1 && c.column_path().parts()[0] == column
                })?;
                let stats = chunk.statistics()?;
                let range = match stats {
                    Statistics::Int32(s) => s
                        .min_opt()
                        .zip(s.max_opt())
                        .map(|(lo, hi)| (i64::from(*lo), i64::from(*hi))),
                    Statistics::Int64(s) => s.min_opt().copied().zip(s.max_opt().copied()),
                    _ => return None,
                };
                match range {
                    Some(range) => Some(Some(range)),
                    // No bounds: fine only when every value is null.
                    None => (stats.null_count_opt() == Some(group.rows)).then_some(None),
                }
            })
            .collect()
    }

    /// The scan in `tasks` ranges of whole row groups of about equal rows, or none when a
    /// file's row groups are unknown or there are too few to go round.
    fn divide_scan(&self, config: &FileScanConfig, tasks: usize) -> Option<FileScanConfig> {
        // A scan declared sorted relies on how its files are grouped.
        if !config.output_ordering.is_empty() {
            return None;
        }
        let units = self.units(config)?;
        if units.groups.len() < tasks {
            return None;
        }
        let rows: Vec<u64> = units.groups.iter().map(|(_, _, g)| g.rows).collect();
        let tasks: Vec<Vec<usize>> = shares(&rows, tasks)
            .into_iter()
            .map(|range| range.collect())
            .collect();
        let groups = units.file_groups(&tasks);
        Some(
            FileScanConfigBuilder::from(config.clone())
                .with_file_groups(groups)
                .build(),
        )
    }
}

impl Scans for RowGroups {
    /// `plan` (one stage's) with its scan divided into as many tasks as before, each of whole
    /// row groups, or unchanged when it has no scan that may be re-divided.
    fn divide(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self.rewrite(&plan, true)?.unwrap_or(plan))
    }

    /// A filtered, projected Parquet scan of at most [`READ_WHOLE_MAX_ROWS`] rows as one
    /// partition. A stage of its own would cost a round of tasks — starting them, opening the
    /// file, waiting for the slowest, sending the rows to every consumer — for a scan that takes
    /// a millisecond or two; each consumer task reads it itself instead.
    fn whole(&self, plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if let Some(config) = parquet_scan(plan) {
            let Some(units) = self.units(config) else {
                return Ok(None);
            };
            let rows: u64 = units.groups.iter().map(|(_, _, g)| g.rows).sum();
            if rows > READ_WHOLE_MAX_ROWS || !config.output_ordering.is_empty() {
                return Ok(None);
            }
            let config = FileScanConfigBuilder::from(config.clone())
                .with_file_groups(vec![FileGroup::new(units.files)])
                .build();
            return Ok(Some(DataSourceExec::from_data_source(config)));
        }
        let row_wise = plan.downcast_ref::<FilterExec>().is_some()
            || plan.downcast_ref::<ProjectionExec>().is_some();
        let [child] = plan.children()[..] else {
            return Ok(None);
        };
        if !row_wise {
            return Ok(None);
        }
        let Some(child) = self.whole(child)? else {
            return Ok(None);
        };
        plan.clone()
            .replace_children(
                vec![child],
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )
            .map(Some)
    }
}

/// Which child carries `node`'s partitions, when its partitions are its input's, one for one.
pub(super) fn partitions_from(node: &Arc<dyn ExecutionPlan>, root: bool) -> Option<usize> {
    if let Some(join) = node.downcast_ref::<HashJoinExec>() {
        // The probe side; the join must not emit build rows once every probe has finished,
        // which needs all the probes in one process.
        let probe_only = matches!(
            join.join_type(),
            JoinType::Inner
                | JoinType::Right
                | JoinType::RightSemi
                | JoinType::RightAnti
                | JoinType::RightMark
        );
        return (*join.partition_mode() == PartitionMode::CollectLeft && probe_only).then_some(1);
    }
    if node.downcast_ref::<CrossJoinExec>().is_some() {
        return Some(1);
    }
    if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
        return (*aggregate.mode() == AggregateMode::Partial).then_some(0);
    }
    if let Some(sort) = node.downcast_ref::<SortExec>() {
        return sort.preserve_partitioning().then_some(0);
    }
    // The stage's output: each task divides its own rows.
    if root && node.downcast_ref::<RepartitionExec>().is_some() {
        return Some(0);
    }
    let row_wise = node.downcast_ref::<FilterExec>().is_some()
        || node.downcast_ref::<ProjectionExec>().is_some()
        || node.downcast_ref::<LocalLimitExec>().is_some()
        || node.downcast_ref::<InferExec>().is_some();
    row_wise.then_some(0)
}

pub(super) fn parquet_scan(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    let scan = node.downcast_ref::<DataSourceExec>()?;
    let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
    (config.file_source().file_type() == "parquet").then_some(config)
}

/// Divides a sequence of weights into `parts` non-empty contiguous ranges of about equal sum
/// (`parts` at most the number of weights).
pub(super) fn shares(weights: &[u64], parts: usize) -> Vec<std::ops::Range<usize>> {
    let total: u64 = weights.iter().sum();
    let mut ranges = Vec::with_capacity(parts);
    let mut start = 0;
    let mut sum = 0u64;
    for part in 1..parts {
        let target = total as u128 * part as u128 / parts as u128;
        // At least one weight per range, and enough left for the ranges still to come.
        let mut end = start + 1;
        sum += weights[start];
        while end < weights.len() - (parts - part) {
            let next = sum + weights[end];
            // Take the next weight when that lands nearer the target than stopping here.
            if (next as u128).abs_diff(target) > (sum as u128).abs_diff(target) {
                break;
            }
            sum = next;
            end += 1;
        }
        ranges.push(start..end);
        start = end;
    }
    ranges.push(start..weights.len());
    ranges
}

#[cfg(test)]
mod tests {
    use super::{READ_WHOLE_MAX_ROWS, RowGroups, Scans, shares};
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, collect_partitioned};
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// A Parquet file of `groups` row groups of `rows` rows, the first wider in bytes than the
    /// others (so equal byte ranges cut it unevenly).
    fn parquet_file(dir: &std::path::Path, groups: usize, rows: usize) -> std::path::PathBuf {
        let path = dir.join(format!("t{groups}x{rows}.parquet"));
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows))
            .set_dictionary_enabled(false)
            .build();
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        for g in 0..groups as i64 {
            // Values of the first group spread widely and compress worse than the rest.
            let values = (0..rows as i64).map(|i| if g == 0 { i * 7_919_393 } else { g });
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(values))],
            )
            .unwrap();
            writer.write(&batch).unwrap();
            writer.flush().unwrap();
        }
        writer.close().unwrap();
        path
    }

    /// The physical plan of `select x from t where x >= 0` over `path` on 2 partitions, with
    /// the row groups of its file.
    async fn scan_plan(
        path: &std::path::Path,
    ) -> (SessionContext, Arc<dyn ExecutionPlan>, RowGroups) {
        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().optimizer.repartition_file_min_size = 0;
        config
            .options_mut()
            .execution
            .enable_file_stream_work_stealing = false;
        let ctx = SessionContext::new_with_config(config);
        ctx.register_parquet("t", path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        let state = ctx.state();
        let logical = ctx.sql("select x from t where x >= 0").await.unwrap();
        let plan = state
            .create_physical_plan(logical.logical_plan())
            .await
            .unwrap();
        let row_groups = RowGroups::of(&plan, &state).await.unwrap();
        (ctx, plan, row_groups)
    }

    async fn rows_per_task(ctx: &SessionContext, plan: Arc<dyn ExecutionPlan>) -> Vec<usize> {
        collect_partitioned(plan, ctx.task_ctx())
            .await
            .unwrap()
            .iter()
            .map(|p| p.iter().map(RecordBatch::num_rows).sum::<usize>())
            .collect()
    }

    #[tokio::test]
    async fn each_task_of_a_divided_scan_reads_whole_row_groups_of_equal_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, plan, row_groups) = scan_plan(&parquet_file(dir.path(), 16, 1000)).await;
        let divided = row_groups.divide(plan.clone()).unwrap();
        assert_eq!(divided.output_partitioning().partition_count(), 2);
        let before = rows_per_task(&ctx, plan).await;
        assert_ne!(
            before,
            vec![8000, 8000],
            "the file is cut unevenly by bytes"
        );
        assert_eq!(before.iter().sum::<usize>(), 16000);
        assert_eq!(rows_per_task(&ctx, divided).await, vec![8000, 8000]);
    }

    #[tokio::test]
    async fn a_small_scan_is_read_whole_and_a_large_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, plan, row_groups) = scan_plan(&parquet_file(dir.path(), 4, 1000)).await;
        assert_eq!(plan.output_partitioning().partition_count(), 2);
        let whole = row_groups
            .whole(&plan)
            .unwrap()
            .expect("4,000 rows are read whole");
        assert_eq!(rows_per_task(&ctx, whole).await, vec![4000]);
        let rows = READ_WHOLE_MAX_ROWS as usize / 2 + 1;
        let (_, plan, row_groups) = scan_plan(&parquet_file(dir.path(), 2, rows)).await;
        assert_eq!(plan.output_partitioning().partition_count(), 2);
        assert!(row_groups.whole(&plan).unwrap().is_none());
    }

    #[test]
    fn sixteen_equal_row_groups_fall_eight_and_eight() {
        assert_eq!(shares(&[100; 16], 2), vec![0..8, 8..16]);
        assert_eq!(shares(&[100; 53], 8).iter().map(|r| r.len()).max(), Some(7));
    }

    #[test]
    fn a_heavy_row_group_gets_a_task_of_its_own() {
        assert_eq!(shares(&[10, 10, 100, 10, 10], 3), vec![0..2, 2..3, 3..5]);
    }

    proptest! {
        #[test]
        fn ranges_cover_every_weight_once_and_none_is_empty(
            weights in prop::collection::vec(0u64..1000, 1..60),
            parts in 1usize..12,
        ) {
            let parts = parts.min(weights.len());
            let ranges = shares(&weights, parts);
            prop_assert_eq!(ranges.len(), parts);
            prop_assert_eq!(ranges[0].start, 0);
            prop_assert_eq!(ranges[parts - 1].end, weights.len());
            for pair in ranges.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
            }
            prop_assert!(ranges.iter().all(|r| !r.is_empty()));
        }

        #[test]
        fn no_range_exceeds_its_share_by_more_than_its_heaviest_weight(
            weights in prop::collection::vec(1u64..1000, 1..60),
            parts in 1usize..12,
        ) {
            let parts = parts.min(weights.len());
            let total: u64 = weights.iter().sum();
            let heaviest = *weights.iter().max().unwrap();
            for r in shares(&weights, parts) {
                let sum: u64 = weights[r].iter().sum();
                prop_assert!(sum * parts as u64 <= total + parts as u64 * heaviest);
            }
        }
    }
}
