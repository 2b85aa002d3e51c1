//! What checking learnt about each place of a program — the value of every binding, where each
//! name is used, and the table every source and step consumes and yields — kept for tools that
//! answer questions about a position (the language server's hover, completion and navigation).
//! Recording only clones `Arc`s, so `flowc check` pays next to nothing for it.

use crate::dag::ModelSignature;
use datafusion::common::DFSchemaRef;
use flow_lang::Span;

/// What a binding, a source or a step holds.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A table, with its columns under their qualifiers.
    Table(DFSchemaRef),
    /// A model; its signature is unknown for a model file the schema source cannot read.
    Model(Option<ModelSignature>),
}

/// One name a `let` or a `split` bound.
#[derive(Debug, Clone)]
pub struct BindingFact {
    pub name: String,
    /// The name where it is bound.
    pub span: Span,
    pub shape: Shape,
}

/// A source (`load`, `sql`, a bound name) or a step, and the tables around it.
#[derive(Debug, Clone)]
pub struct PlaceFact {
    pub span: Span,
    /// The table the step consumes (its columns are the ones in scope inside it); `None` for a
    /// source.
    pub input: Option<Shape>,
    /// What it yields; `None` when it did not check.
    pub output: Option<Shape>,
}

/// Everything recorded while checking one program.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Every binding, in order of definition.
    pub bindings: Vec<BindingFact>,
    /// Names a `let` or `split` bound whose pipeline has an error (no shape to record),
    /// with where they are bound.
    pub unchecked: Vec<(String, Span)>,
    /// Every use of a bound name: its span and the name.
    pub uses: Vec<(Span, String)>,
    /// Sources and steps in the order they were checked (a step after its source).
    pub places: Vec<PlaceFact>,
}

impl Facts {
    /// The binding called `name`.
    pub fn binding(&self, name: &str) -> Option<&BindingFact> {
        self.bindings.iter().find(|b| b.name == name)
    }

    /// Where `name` is bound: by a binding that checked, or by one whose pipeline has an
    /// error (people navigate most when something is wrong).
    pub fn definition(&self, name: &str) -> Option<Span> {
        self.binding(name).map(|b| b.span).or_else(|| {
            self.unchecked
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, span)| *span)
        })
    }

    /// The innermost source or step whose text holds `offset`.
    pub fn place_at(&self, offset: usize) -> Option<&PlaceFact> {
        self.places
            .iter()
            .filter(|p| p.span.start <= offset && offset <= p.span.end)
            .min_by_key(|p| p.span.len())
    }
}
