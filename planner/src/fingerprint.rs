//! What a plan was made for: the compiled program and the schema of each input it reads.
//! A saved plan (`flowc plan --format json`) carries its fingerprint, and `flowc run --plan`
//! runs it only with the program and data it belongs to; [`Fingerprint::differs`] says what
//! changed in words a person can act on.

use flow_compiler::types::display;
use flow_compiler::{Dag, NodeKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The program and inputs a plan belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// SHA-256 of the compiled program (its DAG as `flowc explain` prints it): any change to
    /// what the program computes changes it; comments and layout do not.
    pub program: String,
    /// Every source the program loads, in program order, with its schema.
    pub inputs: Vec<Input>,
}

/// Why a plan does not belong to a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What differs, for people.
    pub message: String,
    /// The source it concerns, when it is one the program still loads.
    pub source: Option<String>,
}

/// One source and the schema the compiler read for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// The source as the program names it.
    pub source: String,
    /// Its columns, `name: type`, in order.
    pub schema: Vec<String>,
}

impl Fingerprint {
    /// The fingerprint of a compiled program.
    pub fn of(dag: &Dag) -> Fingerprint {
        let inputs = dag
            .graph
            .node_indices()
            .filter_map(|id| {
                let node = dag.node(id);
                let NodeKind::Source { load, .. } = &node.kind else {
                    return None;
                };
                Some(Input {
                    source: node.label.clone(),
                    schema: load
                        .schema
                        .fields()
                        .iter()
                        .map(|f| format!("{}: {}", f.name(), display(f.data_type())))
                        .collect(),
                })
            })
            .collect();
        Fingerprint {
            program: hex(&Sha256::digest(dag.display().as_bytes())),
            inputs,
        }
    }

    /// What differs between the program a plan was made for (`self`) and `now`; `None`
    /// when the plan belongs to it. Inputs are compared first: a changed schema changes the
    /// compiled program too, and the input is the more useful news.
    pub fn differs(&self, now: &Fingerprint) -> Option<Difference> {
        for input in &now.inputs {
            let Some(then) = self.inputs.iter().find(|i| i.source == input.source) else {
                return Some(Difference {
                    message: format!(
                        "the program now reads `{}`, which the plan does not know",
                        input.source
                    ),
                    source: Some(input.source.clone()),
                });
            };
            if let Some(change) = schema_change(&then.schema, &input.schema) {
                return Some(Difference {
                    message: format!(
                        "the schema of `{}` changed since the plan was made: {change}",
                        input.source
                    ),
                    source: Some(input.source.clone()),
                });
            }
        }
        if let Some(gone) = self
            .inputs
            .iter()
            .find(|i| !now.inputs.iter().any(|n| n.source == i.source))
        {
            return Some(Difference {
                message: format!(
                    "the plan reads `{}`, which the program no longer loads",
                    gone.source
                ),
                source: None,
            });
        }
        (self.program != now.program).then(|| Difference {
            message: "the program changed since the plan was made".to_string(),
            source: None,
        })
    }
}

/// The first difference between two schemas, as `column: was → now`.
fn schema_change(then: &[String], now: &[String]) -> Option<String> {
    let name = |c: &str| c.split_once(": ").map_or(c, |(n, _)| n).to_string();
    for column in now {
        match then.iter().find(|t| name(t) == name(column)) {
            None => return Some(format!("column `{}` is new", name(column))),
            Some(t) if t != column => return Some(format!("`{t}` is now `{column}`")),
            Some(_) => {}
        }
    }
    if let Some(gone) = then
        .iter()
        .find(|t| !now.iter().any(|c| name(c) == name(t)))
    {
        return Some(format!("column `{}` is gone", name(gone)));
    }
    (then != now).then(|| "its columns are in another order".to_string())
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(columns: &[&str]) -> Fingerprint {
        Fingerprint {
            program: "p".into(),
            inputs: vec![Input {
                source: "orders".into(),
                schema: columns.iter().map(|c| c.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn the_same_program_and_inputs_belong() {
        let a = print(&["id: int64", "amount: float64"]);
        assert_eq!(a.differs(&a.clone()), None);
    }

    #[test]
    fn a_changed_schema_names_the_column() {
        let then = print(&["id: int64", "amount: float64"]);
        let retyped = print(&["id: int64", "amount: string"]);
        let differs = |a: &Fingerprint, b: &Fingerprint| a.differs(b).unwrap().message;
        assert_eq!(
            differs(&then, &retyped),
            "the schema of `orders` changed since the plan was made: `amount: float64` is now `amount: string`"
        );
        assert_eq!(
            then.differs(&retyped).unwrap().source.as_deref(),
            Some("orders")
        );
        let fewer = print(&["id: int64"]);
        assert!(differs(&then, &fewer).ends_with("column `amount` is gone"));
        let more = print(&["id: int64", "amount: float64", "day: date"]);
        assert!(differs(&more, &then).ends_with("column `day` is gone"));
        assert!(differs(&then, &more).ends_with("column `day` is new"));
    }

    #[test]
    fn a_changed_program_is_named_after_its_inputs() {
        let then = print(&["id: int64"]);
        let mut now = then.clone();
        now.program = "q".into();
        let difference = then.differs(&now).unwrap();
        assert_eq!(
            difference.message,
            "the program changed since the plan was made"
        );
        assert_eq!(difference.source, None);
    }
}
