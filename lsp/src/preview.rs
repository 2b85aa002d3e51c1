//! The live plan preview (`flow/plan`): the current text planned as `flowc plan` would plan it.

use crate::Environment;
use crate::analysis::Analysis;
use flow_lang::diagnostic::has_errors;

/// The plan as text, or why there is none.
pub fn plan(
    environment: &dyn Environment,
    analysis: &Analysis,
    target: Option<&str>,
) -> Result<String, String> {
    if has_errors(&analysis.diagnostics) {
        let first = analysis
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| format!("{}: {}", d.code.as_str(), d.message))
            .unwrap_or_default();
        return Err(format!(
            "the program has errors, so it cannot be planned ({first})"
        ));
    }
    let compiled = analysis
        .compiled
        .as_ref()
        .ok_or_else(|| "the program has not been checked".to_string())?;
    let target = target
        .map(str::to_string)
        .or_else(|| compiled.settings.target.clone())
        .unwrap_or_else(|| "local".into());
    let profile = environment.profile(&target)?;
    let options = flow_planner::Options::from_settings(&compiled.settings);
    flow_planner::plan(&compiled.dag, environment.statistics(), &profile, &options)
        .map(|plan| plan.to_text())
        .map_err(|e| e.message)
}
