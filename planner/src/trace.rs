//! Where a column comes from: a column of a plan's output traced down to the source that
//! holds its values unchanged, so the statistics of that source (a sample of its rows, its
//! distinct values) can stand for the column's. A column a projection or a grouping computes
//! has no source; a column copied or renamed keeps its source's.

use datafusion::common::{Column, JoinType};
use datafusion::logical_expr::{Expr, LogicalPlan};
use flow_compiler::{CsvOptions, Dag, NodeId, NodeKind, ResolvedLoad, node_of_scan};

/// A column of a `load`, as the source's files name it.
#[derive(Debug, Clone, Copy)]
pub struct SourceColumn<'a> {
    /// The DAG node of the `load`.
    pub node: NodeId,
    pub load: &'a ResolvedLoad,
    pub csv: &'a CsvOptions,
    /// The column's name in the source's files.
    pub name: &'a str,
}

/// The source `column` of `plan`'s output comes from unchanged, if any.
pub fn column<'a>(dag: &'a Dag, plan: &LogicalPlan, column: &Column) -> Option<SourceColumn<'a>> {
    let index = plan.schema().maybe_index_of_column(column)?;
    field(dag, plan, index)
}

/// The source field `index` of `plan`'s output comes from unchanged, if any.
pub fn field<'a>(dag: &'a Dag, plan: &LogicalPlan, index: usize) -> Option<SourceColumn<'a>> {
    let copied = |input: &LogicalPlan, expr: &Expr| {
        let Expr::Column(c) = strip_alias(expr) else {
            return None;
        };
        column(dag, input, c)
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let read = node_of_scan(scan)?;
            let index = match &scan.projection {
                Some(projection) => *projection.get(index)?,
                None => index,
            };
            match &dag.node(read).kind {
                NodeKind::Source { load, csv, .. } => Some(SourceColumn {
                    node: read,
                    load,
                    csv,
                    name: load.schema.fields().get(index)?.name(),
                }),
                NodeKind::Relational { plan } | NodeKind::Split { plan, .. } => {
                    field(dag, plan, index)
                }
                _ => None,
            }
        }
        LogicalPlan::Projection(p) => copied(&p.input, p.expr.get(index)?),
        LogicalPlan::Aggregate(a) => copied(&a.input, a.group_expr.get(index)?),
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                    (index < left).then(|| field(dag, &j.left, index)).flatten()
                }
                JoinType::RightSemi | JoinType::RightAnti => field(dag, &j.right, index),
                _ if index < left => field(dag, &j.left, index),
                _ => field(dag, &j.right, index - left),
            }
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(_)) => {
            let input = plan.inputs();
            field(dag, input.first()?, index)
        }
        _ => None,
    }
}

fn strip_alias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(a) => strip_alias(&a.expr),
        e => e,
    }
}
