//! Dividing a stage's Parquet scan into tasks of equal rows.
//!
//! DataFusion divides a scan into equal byte ranges, one per target partition, and a row group
//! belongs to the range its first page starts in — so the 16 equal row groups of TPC-H's
//! `orders` fall 9 and 7, and the 4 of `customer` 3 and 1: one worker of two works an eighth
//! longer (or three times as long) while the other waits for it at the end of the stage. Here
//! a scan keeps its number of tasks but each gets a contiguous run of rows of the same length:
//! whole row groups, and where a share ends inside a row group, that row group's rows up to
//! the cut (a file-level `ParquetRowSelection`, which a worker's reader turns into the pages to
//! read and the rows to skip). So 53 row groups on two workers are 26½ each rather than 27 and
//! 26, and a file of one row group still divides.
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
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, ParquetRowSelection};
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
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::stages::Scans;
use crate::ml::scored::InferExec;

/// Most rows a scan under a merge may have to be read whole by every task of its consumer
/// ([`RowGroups::whole`]) — TPC-H's `customer` at scale factor 1 has 150,000.
const READ_WHOLE_MAX_ROWS: u64 = 250_000;

/// One row group: where its first column chunk starts (the offset DataFusion assigns it to a
/// range by), its rows, and the rows of its file before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowGroup {
    pub offset: i64,
    pub rows: u64,
    pub first_row: u64,
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
    /// The rows of each file.
    pub file_rows: Vec<u64>,
    /// (index in `files`, row group index in its file, the row group).
    pub groups: Vec<(usize, usize, RowGroup)>,
}

/// What a task reads of one unit: its rows `rows`, counted from the unit's first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Piece {
    pub unit: usize,
    pub rows: Range<u64>,
}

impl Units {
    /// All the rows of `unit`.
    pub fn whole(&self, unit: usize) -> Piece {
        Piece {
            unit,
            rows: 0..self.groups[unit].2.rows,
        }
    }

    /// The rows of each unit, in order.
    pub fn rows(&self) -> Vec<u64> {
        self.groups.iter().map(|(_, _, g)| g.rows).collect()
    }

    /// One file group per task, task `t` reading the pieces `tasks[t]` lists (in order): a run
    /// of pieces of consecutive rows of one file is one range of it, limited by a row selection
    /// when it starts or ends inside a row group.
    pub fn file_groups(&self, tasks: &[Vec<Piece>]) -> Vec<FileGroup> {
        tasks
            .iter()
            .map(|pieces| {
                let mut members = Vec::new();
                let mut run: Option<(&Piece, &Piece)> = None; // (first, last)
                for piece in pieces {
                    let (file, index, _) = self.groups[piece.unit];
                    run = match run {
                        Some((first, last))
                            if self.groups[last.unit].0 == file
                                && self.groups[last.unit].1 + 1 == index
                                && last.rows.end == self.groups[last.unit].2.rows
                                && piece.rows.start == 0 =>
                        {
                            Some((first, piece))
                        }
                        other => {
                            members.extend(other.map(|(first, last)| self.member(first, last)));
                            Some((piece, piece))
                        }
                    };
                }
                members.extend(run.map(|(first, last)| self.member(first, last)));
                FileGroup::new(members)
            })
            .collect()
    }

    /// The file of a run of pieces from `first` to `last`, as a range of it.
    fn member(&self, first: &Piece, last: &Piece) -> PartitionedFile {
        let (file, _, start_group) = self.groups[first.unit];
        let end_group = self.groups[last.unit].2;
        let member = self.files[file]
            .clone()
            .with_range(start_group.offset, end_group.offset + 1);
        let start = start_group.first_row + first.rows.start;
        let end = end_group.first_row + last.rows.end;
        if first.rows.start == 0 && last.rows.end == end_group.rows {
            return member;
        }
        let selectors = [
            RowSelector::skip(start as usize),
            RowSelector::select((end - start) as usize),
            RowSelector::skip((self.file_rows[file] - end) as usize),
        ];
        let selection: Vec<RowSelector> =
            selectors.into_iter().filter(|s| s.row_count > 0).collect();
        member.with_extension(ParquetRowSelection::new(RowSelection::from(selection)))
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

    /// The units of a scan, or none when a file's footer is unknown or its rows are already
    /// chosen (a scan divided once is not divided again).
    pub(super) fn units(&self, config: &FileScanConfig) -> Option<Units> {
        let mut files: Vec<PartitionedFile> = Vec::new();
        for file in config.file_groups.iter().flat_map(FileGroup::iter) {
            if file.extensions.contains::<ParquetRowSelection>()
                || file.extensions.contains::<ParquetAccessPlan>()
            {
                return None;
            }
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
        let mut file_rows = Vec::with_capacity(files.len());
        for (f, file) in files.iter().enumerate() {
            let metadata = self.files.get(&file.object_meta.location)?;
            let mut first_row = 0;
            for (i, g) in metadata.row_groups().iter().enumerate() {
                let rows = g.num_rows().max(0) as u64;
                // A row group without columns holds no rows.
                if g.num_columns() > 0 {
                    let first = g.column(0);
                    let offset = first
                        .dictionary_page_offset()
                        .unwrap_or_else(|| first.data_page_offset());
                    groups.push((
                        f,
                        i,
                        RowGroup {
                            offset,
                            rows,
                            first_row,
                        },
                    ));
                }
                first_row += rows;
            }
            file_rows.push(first_row);
        }
        Some(Units {
            files,
            file_rows,
            groups,
        })
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
                let chunk = metadata.row_group(i).column(chunk_of(metadata, i, column)?);
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

    /// The least and greatest value of integer column `column` in the rows of `piece`, given
    /// `whole`, those of its row group: for part of a row group, those of the pages the part's
    /// rows fall in when the file has a page index.
    pub(super) fn piece_keys(
        &self,
        units: &Units,
        piece: &Piece,
        column: &str,
        whole: (i64, i64),
    ) -> (i64, i64) {
        if piece.rows == (0..units.groups[piece.unit].2.rows) {
            return whole;
        }
        let Some(pages) = self.pages(units, piece.unit, column) else {
            return whole;
        };
        let mut keys: Option<(i64, i64)> = None;
        for (rows, bounds) in pages {
            if rows.end <= piece.rows.start || rows.start >= piece.rows.end {
                continue;
            }
            let Some((lo, hi)) = bounds else {
                return whole;
            };
            keys = Some(keys.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        keys.unwrap_or(whole)
    }

    /// The rows of `unit` that may hold a value of integer column `column` between `lo` and
    /// `hi`: from the first to the last of its pages whose bounds overlap them when the file
    /// has a page index, else all of them. None when no page does.
    pub(super) fn rows_with_keys(
        &self,
        units: &Units,
        unit: usize,
        column: &str,
        (lo, hi): (i64, i64),
    ) -> Option<Piece> {
        let Some(pages) = self.pages(units, unit, column) else {
            return Some(units.whole(unit));
        };
        let mut overlapping = pages.into_iter().filter(|(_, bounds)| match bounds {
            Some((min, max)) => *max >= lo && *min <= hi,
            None => true,
        });
        let first = overlapping.next()?.0;
        let last = overlapping
            .next_back()
            .map_or(first.clone(), |(rows, _)| rows);
        Some(Piece {
            unit,
            rows: first.start..last.end,
        })
    }

    /// The pages of integer column `column` in `unit` from the page index: each page's rows
    /// (counted from the row group's first) and its least and greatest value (none for a page
    /// of nulls). None without a page index for the column.
    #[expect(clippy::type_complexity)]
    fn pages(
        &self,
        units: &Units,
        unit: usize,
        column: &str,
    ) -> Option<Vec<(Range<u64>, Option<(i64, i64)>)>> {
        let (f, i, group) = units.groups[unit];
        let metadata = self.files.get(&units.files[f].object_meta.location)?;
        let c = chunk_of(metadata, i, column)?;
        let locations = metadata.offset_index()?.get(i)?.get(c)?.page_locations();
        let index = metadata.column_index()?.get(i)?.get(c)?;
        let mut pages = Vec::with_capacity(locations.len());
        for (p, page) in locations.iter().enumerate() {
            let start = u64::try_from(page.first_row_index).ok()?;
            let end = match locations.get(p + 1) {
                Some(next) => u64::try_from(next.first_row_index).ok()?,
                None => group.rows,
            };
            let bounds = match index {
                ColumnIndexMetaData::INT64(pages) => {
                    pages.min_value(p).copied().zip(pages.max_value(p).copied())
                }
                ColumnIndexMetaData::INT32(pages) => pages
                    .min_value(p)
                    .map(|v| i64::from(*v))
                    .zip(pages.max_value(p).map(|v| i64::from(*v))),
                _ => return None,
            };
            pages.push((start..end, bounds));
        }
        Some(pages)
    }

    /// The scan in `tasks` runs of equal rows, or none when a file's row groups are unknown or
    /// there are fewer rows than tasks.
    fn divide_scan(&self, config: &FileScanConfig, tasks: usize) -> Option<FileScanConfig> {
        // A scan declared sorted relies on how its files are grouped.
        if !config.output_ordering.is_empty() {
            return None;
        }
        let units = self.units(config)?;
        let rows = units.rows();
        if rows.iter().sum::<u64>() < tasks as u64 {
            return None;
        }
        let groups = units.file_groups(&row_shares(&rows, tasks));
        Some(
            FileScanConfigBuilder::from(config.clone())
                .with_file_groups(groups)
                .build(),
        )
    }
}

impl Scans for RowGroups {
    /// `plan` (one stage's) with its scan divided into as many tasks as before, each of equal
    /// rows, or unchanged when it has no scan that may be re-divided.
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

/// The index of the chunk of top-level column `column` in row group `group`.
fn chunk_of(metadata: &ParquetMetaData, group: usize, column: &str) -> Option<usize> {
    metadata
        .row_group(group)
        .columns()
        .iter()
        .position(|c| c.column_path().parts().len() == 1 && c.column_path().parts()[0] == column)
}

pub(super) fn parquet_scan(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    let scan = node.downcast_ref::<DataSourceExec>()?;
    let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
    (config.file_source().file_type() == "parquet").then_some(config)
}

/// Divides the rows of a sequence of units (`rows[u]` each) into `parts` contiguous shares
/// whose sizes differ by at most one row, a unit cut where a share ends inside it. Units with
/// no rows are in no share; with fewer rows than parts, some shares are empty.
pub(super) fn row_shares(rows: &[u64], parts: usize) -> Vec<Vec<Piece>> {
    let total: u64 = rows.iter().sum();
    let bound = |p: usize| (u128::from(total) * p as u128 / parts.max(1) as u128) as u64;
    let mut shares = vec![Vec::new(); parts];
    let mut start = 0;
    for (unit, &n) in rows.iter().enumerate() {
        let end = start + n;
        for (p, share) in shares.iter_mut().enumerate() {
            let (lo, hi) = (bound(p).max(start), bound(p + 1).min(end));
            if lo < hi {
                share.push(Piece {
                    unit,
                    rows: lo - start..hi - start,
                });
            }
        }
        start = end;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::{Piece, READ_WHOLE_MAX_ROWS, RowGroups, Scans, row_shares};
    use crate::distributed::codec;
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
    async fn part_of_a_row_group_has_the_keys_of_its_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paged.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        // One row group of 1,000 ascending keys in pages of 100 rows.
        let props = WriterProperties::builder()
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(100)
            .set_dictionary_enabled(false)
            .build();
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(0..1000))],
        );
        writer.write(&batch.unwrap()).unwrap();
        writer.close().unwrap();
        let (_, plan, row_groups) = scan_plan(&path).await;
        let mut node = plan;
        let config = loop {
            if let Some(config) = super::parquet_scan(&node) {
                break config.clone();
            }
            node = node.children()[0].clone();
        };
        let units = row_groups.units(&config).unwrap();
        let keys = |rows| row_groups.piece_keys(&units, &Piece { unit: 0, rows }, "x", (0, 999));
        assert_eq!(keys(0..1000), (0, 999));
        assert_eq!(keys(0..250), (0, 299));
        assert_eq!(keys(250..500), (200, 499));
        assert_eq!(keys(950..1000), (900, 999));
        let rows = |keys| {
            row_groups
                .rows_with_keys(&units, 0, "x", keys)
                .map(|p| p.rows)
        };
        assert_eq!(rows((250, 420)), Some(200..500));
        assert_eq!(rows((-5, 0)), Some(0..100));
        assert_eq!(rows((2000, 3000)), None);
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

    #[tokio::test]
    async fn a_share_ending_inside_a_row_group_reads_its_rows_up_to_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        for groups in [3, 1] {
            let (ctx, plan, row_groups) = scan_plan(&parquet_file(dir.path(), groups, 1000)).await;
            let divided = row_groups.divide(plan.clone()).unwrap();
            assert_eq!(divided.output_partitioning().partition_count(), 2);
            let half = groups * 1000 / 2;
            assert_eq!(rows_per_task(&ctx, divided.clone()).await, vec![half, half]);
            // As a worker gets it: the row selections survive the trip.
            let shipped = codec::decode(&codec::encode(divided.clone()).unwrap(), &ctx.task_ctx());
            assert_eq!(
                rows_per_task(&ctx, shipped.unwrap()).await,
                vec![half, half]
            );
            // The same rows as the undivided scan, each once.
            let values = |batches: Vec<RecordBatch>| {
                let mut v: Vec<i64> = batches
                    .iter()
                    .flat_map(|b| {
                        let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                        c.values().to_vec()
                    })
                    .collect();
                v.sort_unstable();
                v
            };
            let whole = datafusion::physical_plan::collect(plan, ctx.task_ctx())
                .await
                .unwrap();
            let parts = datafusion::physical_plan::collect(divided, ctx.task_ctx())
                .await
                .unwrap();
            assert_eq!(values(parts), values(whole));
        }
    }

    #[test]
    fn sixteen_equal_row_groups_fall_eight_and_eight() {
        let shares = row_shares(&[100; 16], 2);
        assert_eq!(
            shares[0].iter().map(|p| p.unit).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert!(shares.iter().flatten().all(|p| p.rows == (0..100)));
    }

    #[test]
    fn an_odd_row_group_is_cut_in_half() {
        let shares = row_shares(&[100; 53], 2);
        assert_eq!(shares[0].len(), 27);
        assert_eq!(
            shares[0][26],
            Piece {
                unit: 26,
                rows: 0..50
            }
        );
        assert_eq!(
            shares[1][0],
            Piece {
                unit: 26,
                rows: 50..100
            }
        );
        assert_eq!(shares[1].len(), 27);
    }

    proptest! {
        #[test]
        fn shares_cover_every_row_once_in_order_and_differ_by_at_most_a_row(
            rows in prop::collection::vec(0u64..1000, 1..60),
            parts in 1usize..12,
        ) {
            let shares = row_shares(&rows, parts);
            prop_assert_eq!(shares.len(), parts);
            // Concatenated, the shares are every unit's rows in order.
            let mut next = (0usize, 0u64);
            for piece in shares.iter().flatten() {
                prop_assert!(!piece.rows.is_empty());
                while next.0 < rows.len() && next.1 == rows[next.0] {
                    next = (next.0 + 1, 0);
                }
                prop_assert_eq!((piece.unit, piece.rows.start), next);
                next = (piece.unit, piece.rows.end);
            }
            prop_assert!(rows[next.0..].iter().sum::<u64>() == next.1);
            let sizes: Vec<u64> = shares
                .iter()
                .map(|s| s.iter().map(|p| p.rows.end - p.rows.start).sum())
                .collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "{:?}", sizes);
        }
    }
}
