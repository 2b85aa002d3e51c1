//! The `sql "..."` escape hatch: planned by DataFusion's SQL planner against the bound tables
//! (and `input`, the table on the left of the step), then inlined into the pipeline's plan.

use crate::expr::clean_error;
use crate::{Compiler, NodeId, Value};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::{ViewTable, source_as_provider};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use flow_lang::ast::StrLit;
use flow_lang::{Code, Diagnostic};
use std::sync::Arc;

impl Compiler<'_> {
    pub(crate) fn sql_step(
        &mut self,
        input: Option<LogicalPlan>,
        query: &StrLit,
    ) -> Result<(LogicalPlan, Vec<NodeId>), Diagnostic> {
        let ctx = SessionContext::new_with_state(self.state.clone());
        let fail = |message: String| {
            Diagnostic::error(
                Code::E0022,
                format!("the sql query does not plan: {message}"),
                query.span,
                "in this query",
            )
        };
        let mut tables: Vec<(String, Vec<NodeId>)> = Vec::new();
        if let Some(plan) = input {
            ctx.register_table("input", Arc::new(ViewTable::new(plan, None)))
                .map_err(|e| fail(clean_error(&e.to_string())))?;
        }
        for name in &self.order {
            if let Value::Table { plan, deps } = &self.bindings[name].value
                && name != "input"
            {
                let _ =
                    ctx.register_table(name.as_str(), Arc::new(ViewTable::new(plan.clone(), None)));
                tables.push((name.clone(), deps.clone()));
            }
        }
        let plan = futures::executor::block_on(ctx.state().create_logical_plan(&query.value))
            .map_err(|e| {
                let mut d = fail(clean_error(&e.to_string()));
                d.help = Some(
                    "the table on the left of `|` is called `input`; bound tables keep their names"
                        .into(),
                );
                d
            })?;
        if !matches!(
            plan,
            LogicalPlan::Projection(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Distinct(_)
                | LogicalPlan::Union(_)
                | LogicalPlan::Join(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::TableScan(_)
                | LogicalPlan::Values(_)
                | LogicalPlan::EmptyRelation(_)
        ) {
            return Err(fail("only queries (SELECT ...) are allowed".into()));
        }
        // Inline the views so the DAG holds plain plans over its own nodes.
        let mut used: Vec<String> = Vec::new();
        let inlined = plan
            .transform_up(|node| {
                if let LogicalPlan::TableScan(scan) = &node
                    && let Ok(provider) = source_as_provider(&scan.source)
                    && let Some(view) = provider.downcast_ref::<ViewTable>()
                {
                    let name = scan.table_name.table().to_string();
                    used.push(name.clone());
                    let inner = view
                        .get_logical_plan()
                        .map(|p| p.into_owned())
                        .expect("views have plans");
                    let aliased = LogicalPlanBuilder::from(inner).alias(name)?;
                    let aliased = match &scan.projection {
                        Some(projection) => {
                            let schema = aliased.schema().clone();
                            let cols: Vec<_> = projection
                                .iter()
                                .map(|i| {
                                    datafusion::logical_expr::Expr::Column(
                                        schema.qualified_field(*i).into(),
                                    )
                                })
                                .collect();
                            aliased.project(cols)?
                        }
                        None => aliased,
                    };
                    return Ok(Transformed::yes(aliased.build()?));
                }
                Ok(Transformed::no(node))
            })
            .map_err(|e| fail(clean_error(&e.to_string())))?
            .data;
        let mut deps = Vec::new();
        for (name, table_deps) in tables {
            if used.contains(&name) {
                if let Some(b) = self.bindings.get_mut(&name) {
                    b.used = true;
                }
                deps.extend(table_deps);
            }
        }
        Ok((inlined, deps))
    }
}
