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

/// What `column` of `plan`'s output is computed from: an expression over the columns of one
/// source (named as its files name them), and that source. A column copied from a source is
/// that source's column; one a projection computes (`derive tokens = tokenize(review, ...)`)
/// is its expression, when every column it reads comes unchanged from the same source.
pub fn computed<'a>(
    dag: &'a Dag,
    plan: &LogicalPlan,
    column: &Column,
) -> Option<(SourceColumn<'a>, Expr)> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    if let Some(at) = self::column(dag, plan, column) {
        return Some((at, Expr::Column(Column::from_name(at.name))));
    }
    let index = plan.schema().maybe_index_of_column(column)?;
    let (input, expr) = match plan {
        LogicalPlan::Projection(p) => (p.input.as_ref(), strip_alias(p.expr.get(index)?)),
        LogicalPlan::TableScan(scan) => {
            let read = node_of_scan(scan)?;
            let index = match &scan.projection {
                Some(projection) => *projection.get(index)?,
                None => index,
            };
            let NodeKind::Relational { plan } = &dag.node(read).kind else {
                return None;
            };
            let column = Column::from(plan.schema().qualified_field(index));
            return computed(dag, plan, &column);
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Repartition(_) => {
            let input = *plan.inputs().first()?;
            let column = Column::from(input.schema().qualified_field(index));
            return computed(dag, input, &column);
        }
        _ => return None,
    };
    if let Expr::Column(c) = expr {
        return computed(dag, input, c);
    }
    let mut source: Option<SourceColumn<'a>> = None;
    let over_source = expr
        .clone()
        .transform(|e| {
            let Expr::Column(c) = &e else {
                return Ok(Transformed::no(e));
            };
            let Some(at) = self::column(dag, input, c) else {
                return Err(datafusion::error::DataFusionError::Plan("computed".into()));
            };
            if source.is_some_and(|s| s.node != at.node) {
                return Err(datafusion::error::DataFusionError::Plan(
                    "two sources".into(),
                ));
            }
            source = Some(at);
            Ok(Transformed::yes(Expr::Column(Column::from_name(at.name))))
        })
        .ok()?
        .data;
    Some((source?, over_source))
}

fn strip_alias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(a) => strip_alias(&a.expr),
        e => e,
    }
}
