//! Joining two Parquet scans that are clustered on the join key without a broadcast.
//!
//! Files are often written in the order of a key — TPC-H's `orders` and `lineitem` by order
//! key, event logs by time — and their row groups' statistics say so: each row group's least
//! key is at least the previous one's greatest. When both sides of a join are read that way,
//! task `t` can read a contiguous run of the probe side's rows (its row groups, the first and
//! last perhaps in part), whose keys lie between `lo` and `hi`, and of the build side just
//! the row groups whose keys overlap `lo..=hi` — of one that reaches outside them, only the
//! pages that reach in, where the file has a page index.
//! Every probe row is read by exactly one task and meets, there, every build row with its key;
//! a build row group straddling two tasks' ranges is read by both, and its rows outside a task's
//! range find no partner there. So the join runs partition by partition — DataFusion's
//! partitioned mode — in the same stage as both scans: no stage to compute the build side, no
//! copy of it sent to every task, no hash table of all of it built by every task.
//!
//! The rewrite applies to a hash join whose build side DataFusion collects into one partition
//! (a broadcast), on one pair of plain columns, of a type whose row-group statistics are
//! integers, with a join type that emits nothing from the build side at the end. Anything else
//! is left as it is.

use super::row_groups::{Piece, RowGroups, parquet_scan, partitions_from, row_shares};
use datafusion::common::NullEquality;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::JoinType;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, ReplaceChildrenOptions,
};
use std::sync::Arc;

/// The plan with every join that can be co-located rewritten to run partition by partition.
pub fn co_locate(
    plan: Arc<dyn ExecutionPlan>,
    row_groups: &RowGroups,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_down(|node| {
        Ok(match co_located(&node, row_groups)? {
            Some(join) => Transformed::yes(join),
            None => Transformed::no(node),
        })
    })
    .map(|t| t.data)
}

/// A scan found below a plan: the child indices that lead to it and the file column a given
/// output column of the plan is.
struct Traced {
    path: Vec<usize>,
    column: String,
}

fn co_located(
    node: &Arc<dyn ExecutionPlan>,
    row_groups: &RowGroups,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(join) = node.downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    // `partitions_from` admits exactly the broadcast joins whose partitions are the probe's.
    if partitions_from(node, false) != Some(1)
        || join.null_equality() != NullEquality::NullEqualsNothing
        || matches!(join.join_type(), JoinType::RightMark)
    {
        return Ok(None);
    }
    let [(left_key, right_key)] = join.on() else {
        return Ok(None);
    };
    let Some(gather) = join.left().downcast_ref::<CoalescePartitionsExec>() else {
        return Ok(None);
    };
    let build = gather.input();
    let probe = join.right();
    let tasks = probe.output_partitioning().partition_count();
    if tasks < 2 {
        return Ok(None);
    }
    let (Some(left_key), Some(right_key)) = (
        left_key.downcast_ref::<Column>(),
        right_key.downcast_ref::<Column>(),
    ) else {
        return Ok(None);
    };
    let (Some(build_side), Some(probe_side)) = (
        trace(build, left_key.index()),
        trace(probe, right_key.index()),
    ) else {
        return Ok(None);
    };
    let (Some(build_scan), Some(probe_scan)) = (
        scan_at(build, &build_side.path),
        scan_at(probe, &probe_side.path),
    ) else {
        return Ok(None);
    };
    let Some((build_groups, probe_groups)) = split(
        row_groups,
        (build_scan, &build_side.column),
        (probe_scan, &probe_side.column),
        tasks,
    ) else {
        return Ok(None);
    };
    let build = replace_scan(build, &build_side.path, build_scan, build_groups)?;
    let probe = replace_scan(probe, &probe_side.path, probe_scan, probe_groups)?;
    tracing::debug!(
        "join on {} = {} co-located in {tasks} partitions",
        build_side.column,
        probe_side.column
    );
    join.builder()
        .with_partition_mode(PartitionMode::Partitioned)
        .with_new_children(vec![build, probe])?
        .reset_state()
        .build_exec()
        .map(Some)
}

/// Follows output column `index` of `plan` down the operators its partitions pass through
/// unchanged in number to a Parquet scan, as long as the column is carried unchanged.
fn trace(plan: &Arc<dyn ExecutionPlan>, index: usize) -> Option<Traced> {
    if let Some(config) = parquet_scan(plan) {
        if !config.output_ordering.is_empty() {
            return None;
        }
        return scan_column(config, index).map(|column| Traced {
            path: Vec::new(),
            column,
        });
    }
    let (child, index) = if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let index = match filter.projection() {
            Some(projection) => *projection.get(index)?,
            None => index,
        };
        (0, index)
    } else if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let column = projection
            .expr()
            .get(index)?
            .expr
            .downcast_ref::<Column>()?;
        (0, column.index())
    } else if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
        if partitions_from(plan, false) != Some(1) {
            return None;
        }
        let index = match &join.projection {
            Some(projection) => *projection.get(index)?,
            None => index,
        };
        let index = match join.join_type() {
            JoinType::Inner | JoinType::Right => {
                index.checked_sub(join.left().schema().fields().len())?
            }
            JoinType::RightSemi | JoinType::RightAnti => index,
            _ => return None,
        };
        (1, index)
    } else {
        return None;
    };
    let mut traced = trace(&plan.children()[child].clone(), index)?;
    traced.path.insert(0, child);
    Some(traced)
}

/// The file column output column `index` of a scan reads unchanged, if it does.
fn scan_column(config: &FileScanConfig, index: usize) -> Option<String> {
    let table = config.file_source().table_schema();
    let file_columns = table.file_schema().fields().len();
    let column = match config.file_source().projection() {
        Some(projection) => {
            let column = projection
                .as_ref()
                .get(index)?
                .expr
                .downcast_ref::<Column>()?;
            column.index()
        }
        None => index,
    };
    (column < file_columns).then(|| table.file_schema().field(column).name().clone())
}

fn scan_at<'a>(plan: &'a Arc<dyn ExecutionPlan>, path: &[usize]) -> Option<&'a FileScanConfig> {
    let mut node = plan;
    for &child in path {
        node = node.children().get(child).copied()?;
    }
    parquet_scan(node)
}

/// Per task, the build side's file groups and the probe side's, or none when the probe side is
/// not clustered on its key or the build side's ranges overlap too much to be worth it.
fn split(
    row_groups: &RowGroups,
    (build, build_column): (&FileScanConfig, &str),
    (probe, probe_column): (&FileScanConfig, &str),
    tasks: usize,
) -> Option<(Vec<FileGroup>, Vec<FileGroup>)> {
    let probe_units = row_groups.units(probe)?;
    let build_units = row_groups.units(build)?;
    let rows = probe_units.rows();
    if rows.iter().sum::<u64>() < tasks as u64 {
        return None;
    }
    let probe_keys = row_groups.key_ranges(&probe_units, probe_column)?;
    let build_keys = row_groups.key_ranges(&build_units, build_column)?;
    if !clustered(&probe_keys) {
        return None;
    }
    let probe_tasks = row_shares(&rows, tasks);
    // A probe row group cut between two tasks gives each the keys of the pages its part falls
    // in (or of the whole row group without a page index): bounds, not the exact keys, but a
    // build row read by a task no probe row of its key reaches only meets nothing.
    let build_tasks: Vec<Vec<Piece>> = probe_tasks
        .iter()
        .map(|pieces| {
            let keys = pieces.iter().filter_map(|p| {
                let whole = probe_keys[p.unit]?;
                Some(row_groups.piece_keys(&probe_units, p, probe_column, whole))
            });
            let lo = keys.clone().map(|(lo, _)| lo).min();
            let hi = keys.map(|(_, hi)| hi).max();
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Vec::new();
            };
            // Of a build row group that reaches outside `lo..=hi`, the pages that reach into it.
            (0..build_keys.len())
                .filter_map(|u| match build_keys[u] {
                    Some((min, max)) if min >= lo && max <= hi => Some(build_units.whole(u)),
                    Some((min, max)) if max >= lo && min <= hi => {
                        row_groups.rows_with_keys(&build_units, u, build_column, (lo, hi))
                    }
                    _ => None,
                })
                .collect()
        })
        .collect();
    // Clustered, a build row group is read by one task, or by the two either side of a cut:
    // one straddling the keys where the cut falls between probe row groups, the one or two the
    // cut probe row group's keys span where it falls inside one. More, and the build side's
    // ranges overlap too much for this to beat a broadcast.
    let read: usize = build_tasks.iter().map(Vec::len).sum();
    if read > build_units.groups.len() + 2 * (tasks - 1) {
        tracing::debug!(
            "join on {build_column} = {probe_column} not co-located: its tasks would read \
             {read} of the build side's {} row groups",
            build_units.groups.len()
        );
        return None;
    }
    let rows: u64 = build_tasks
        .iter()
        .flatten()
        .map(|p| p.rows.end - p.rows.start)
        .sum();
    tracing::debug!(
        "the tasks of the join on {build_column} = {probe_column} read {read} of the build \
         side's {} row groups, {rows} of its {} rows",
        build_units.groups.len(),
        build_units.file_rows.iter().sum::<u64>()
    );
    Some((
        build_units.file_groups(&build_tasks),
        probe_units.file_groups(&probe_tasks),
    ))
}

/// Whether each unit's keys start at or after the previous unit's end (all-null units aside).
fn clustered(keys: &[Option<(i64, i64)>]) -> bool {
    let mut last = i64::MIN;
    for (lo, hi) in keys.iter().flatten() {
        if *lo < last {
            return false;
        }
        last = *hi;
    }
    true
}

/// `plan` with the scan at `path` reading `groups`, and everything above it recomputed.
fn replace_scan(
    plan: &Arc<dyn ExecutionPlan>,
    path: &[usize],
    scan: &FileScanConfig,
    groups: Vec<FileGroup>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let Some((&child, rest)) = path.split_first() else {
        let config = FileScanConfigBuilder::from(scan.clone())
            .with_file_groups(groups)
            .build();
        return Ok(DataSourceExec::from_data_source(config));
    };
    let mut children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    children[child] = replace_scan(&children[child], rest, scan, groups)?;
    plan.clone().replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

#[cfg(test)]
mod tests {
    use super::{clustered, co_locate, parquet_scan};
    use crate::distributed::codec;
    use crate::distributed::row_groups::RowGroups;
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::physical_plan::FileGroup;
    use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
    use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
    use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
    use datafusion::physical_plan::{ExecutionPlan, collect};
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use std::path::Path;
    use std::sync::Arc;

    #[test]
    fn keys_in_order_are_clustered_and_keys_that_go_back_are_not() {
        assert!(clustered(&[
            Some((1, 5)),
            Some((5, 9)),
            None,
            Some((10, 12))
        ]));
        assert!(!clustered(&[Some((1, 5)), Some((4, 9))]));
        assert!(clustered(&[]));
    }

    /// A Parquet file of columns `key` and `value` (named `{prefix}_key`, `{prefix}_value`) in
    /// row groups of `group` rows and pages of 100, so that tasks cut row groups by pages.
    fn write(path: &Path, prefix: &str, keys: &[i64], group: usize) {
        let schema = Arc::new(Schema::new(vec![
            Field::new(format!("{prefix}_key"), DataType::Int64, false),
            Field::new(format!("{prefix}_value"), DataType::Int64, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group))
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(100)
            .build();
        let file = std::fs::File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        for chunk in keys.chunks(group) {
            let values = chunk.iter().map(|k| k * 10 + 7);
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(chunk.to_vec())),
                    Arc::new(Int64Array::from_iter_values(values)),
                ],
            )
            .unwrap();
            writer.write(&batch).unwrap();
            writer.flush().unwrap();
        }
        writer.close().unwrap();
    }

    /// The distributed planning settings that matter here: two partitions, a small side
    /// collected whole under a join, no dynamic filters.
    async fn plan(dir: &Path, sql: &str) -> (SessionContext, Arc<dyn ExecutionPlan>) {
        let mut config = SessionConfig::new().with_target_partitions(2);
        let options = config.options_mut();
        options.optimizer.repartition_file_min_size = 0;
        options.optimizer.enable_round_robin_repartition = false;
        options.optimizer.enable_join_dynamic_filter_pushdown = false;
        options.optimizer.hash_join_single_partition_threshold = 32 << 20;
        options.optimizer.hash_join_single_partition_threshold_rows = 1 << 20;
        options.execution.enable_file_stream_work_stealing = false;
        let ctx = SessionContext::new_with_config(config);
        for name in ["small", "big"] {
            let path = dir.join(format!("{name}.parquet"));
            ctx.register_parquet(name, path.to_str().unwrap(), ParquetReadOptions::default())
                .await
                .unwrap();
        }
        let logical = ctx.sql(sql).await.unwrap();
        let plan = ctx
            .state()
            .create_physical_plan(logical.logical_plan())
            .await
            .unwrap();
        (ctx, plan)
    }

    fn joins(plan: &Arc<dyn ExecutionPlan>) -> Vec<(PartitionMode, bool)> {
        let mut found = Vec::new();
        let mut pending = vec![plan.clone()];
        while let Some(node) = pending.pop() {
            if let Some(join) = node.downcast_ref::<HashJoinExec>() {
                let gathered = join
                    .left()
                    .downcast_ref::<CoalescePartitionsExec>()
                    .is_some();
                found.push((*join.partition_mode(), gathered));
            }
            pending.extend(node.children().into_iter().cloned());
        }
        found
    }

    /// How many files the build side's scan and the probe side's read part of.
    fn selected_files(plan: &Arc<dyn ExecutionPlan>) -> (usize, usize) {
        let mut counts = Vec::new();
        let mut pending = vec![plan.clone()];
        while let Some(node) = pending.pop() {
            if let Some(config) = parquet_scan(&node) {
                let files = config.file_groups.iter().flat_map(FileGroup::iter);
                counts.push(
                    files
                        .filter(|f| f.extensions.contains::<ParquetRowSelection>())
                        .count(),
                );
            }
            // The build side (the join's left) comes off the stack first.
            pending.extend(node.children().into_iter().rev().cloned());
        }
        (counts[0], counts[1])
    }

    async fn sorted_rows(ctx: &SessionContext, plan: Arc<dyn ExecutionPlan>) -> Vec<(i64, i64)> {
        let mut rows = Vec::new();
        for batch in collect(plan, ctx.task_ctx()).await.unwrap() {
            let column = |i: usize| {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .clone()
            };
            let (keys, values) = (column(0), column(1));
            rows.extend((0..keys.len()).map(|r| (keys.value(r), values.value(r))));
        }
        rows.sort_unstable();
        rows
    }

    const SQL: &str = "select big_key, small_value from small join big on small_key = big_key \
                       where small_value % 3 <> 0";

    #[tokio::test]
    async fn a_join_of_scans_clustered_on_its_key_runs_partition_by_partition() {
        let dir = tempfile::tempdir().unwrap();
        // 3,000 keys in row groups of 250; the big side has each key four times (some missing),
        // in row groups of 700 that do not line up with the small side's.
        write(
            &dir.path().join("small.parquet"),
            "small",
            &(0..3000).collect::<Vec<_>>(),
            250,
        );
        let big: Vec<i64> = (0..12_000).map(|i| i / 4).filter(|k| k % 7 != 3).collect();
        write(&dir.path().join("big.parquet"), "big", &big, 700);
        let (ctx, plan) = plan(dir.path(), SQL).await;
        assert_eq!(joins(&plan), vec![(PartitionMode::CollectLeft, true)]);
        let row_groups = RowGroups::of(&plan, &ctx.state()).await.unwrap();
        let co_located = co_locate(plan.clone(), &row_groups).unwrap();
        assert_eq!(
            joins(&co_located),
            vec![(PartitionMode::Partitioned, false)]
        );
        // Both sides are cut inside a row group: the probe side where its rows halve, the build
        // side where the pages of each task's keys end.
        assert_eq!(selected_files(&co_located), (2, 2));
        let expected = sorted_rows(&ctx, plan).await;
        assert!(expected.len() > 5000);
        assert_eq!(sorted_rows(&ctx, co_located.clone()).await, expected);
        // As a worker gets it: each partition's file ranges survive the trip.
        let shipped = codec::decode(&codec::encode(co_located).unwrap(), &ctx.task_ctx()).unwrap();
        assert_eq!(joins(&shipped), vec![(PartitionMode::Partitioned, false)]);
        assert_eq!(sorted_rows(&ctx, shipped).await, expected);
    }

    #[tokio::test]
    async fn a_probe_side_out_of_key_order_keeps_its_broadcast() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("small.parquet"),
            "small",
            &(0..3000).collect::<Vec<_>>(),
            250,
        );
        let big: Vec<i64> = (0..12_000).map(|i| (i * 7919) % 3000).collect();
        write(&dir.path().join("big.parquet"), "big", &big, 700);
        let (ctx, plan) = plan(dir.path(), SQL).await;
        let row_groups = RowGroups::of(&plan, &ctx.state()).await.unwrap();
        let kept = co_locate(plan, &row_groups).unwrap();
        assert_eq!(joins(&kept), vec![(PartitionMode::CollectLeft, true)]);
    }
}
