//! Dividing a Parquet scan into tasks of equal rows.
//!
//! DataFusion divides a scan into equal byte ranges, one per target partition, and a row group
//! belongs to the range its first page starts in — so the 16 equal row groups of TPC-H's
//! `orders` fall 9 and 7, and the 4 of `customer` 3 and 1: one worker of two works an eighth
//! longer (or three times as long) while the other waits for it at the end of the stage. Here
//! each task gets a contiguous run of rows of the same length:
//! whole row groups, and where a share ends inside a row group, that row group's rows up to
//! the cut (a file-level `ParquetRowSelection`, which a worker's reader turns into the pages to
//! read and the rows to skip). So 53 row groups on two workers are 26½ each rather than 27 and
//! 26, and a file of one row group still divides.
//!
//! [`super::lowering`] asks for the shares of each Parquet scan of a stage with more than one
//! task; each task's plan reads its share.

use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, ParquetRowSelection};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::physical_plan::ExecutionPlan;
use object_store::path::Path;
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::file::metadata::ParquetMetaData;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

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

    /// The files of each of `tasks` runs of equal rows of a Parquet scan, or none when a
    /// file's row groups are unknown or there are fewer rows than tasks.
    pub(super) fn shares(&self, config: &FileScanConfig, tasks: usize) -> Option<Vec<FileGroup>> {
        self.divide_scan(config, tasks).map(|c| c.file_groups)
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
    use super::{Piece, RowGroups, row_shares};
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

    /// `plan` with its scan's files in shares of equal rows, one per partition.
    fn divide(row_groups: &RowGroups, plan: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::datasource::physical_plan::FileScanConfigBuilder;
        use datafusion::datasource::source::DataSourceExec;
        let tasks = plan.output_partitioning().partition_count();
        plan.clone()
            .transform_up(|node| {
                let Some(config) = super::parquet_scan(&node) else {
                    return Ok(Transformed::no(node));
                };
                let groups = row_groups.shares(config, tasks).unwrap();
                let config = FileScanConfigBuilder::from(config.clone())
                    .with_file_groups(groups)
                    .build();
                Ok(Transformed::yes(
                    DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
                ))
            })
            .unwrap()
            .data
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
        let divided = divide(&row_groups, &plan);
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
    async fn a_share_ending_inside_a_row_group_reads_its_rows_up_to_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        for groups in [3, 1] {
            let (ctx, plan, row_groups) = scan_plan(&parquet_file(dir.path(), groups, 1000)).await;
            let divided = divide(&row_groups, &plan);
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
