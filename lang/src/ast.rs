//! The syntax tree of a `.flow` file. Every node carries the [`Span`] of the text it came from.

use crate::span::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub statements: Vec<Stmt>,
    /// Every `#` comment of the file, in order, so the formatter can keep them.
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The text after `#`, without the line break.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StrLit {
    /// The value with escapes resolved.
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntLit {
    pub value: i64,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    Config(Object),
    Let {
        name: Ident,
        value: Pipeline,
    },
    Split {
        first: Ident,
        second: Ident,
        input: Pipeline,
        fraction: Expr,
        seed: Option<IntLit>,
    },
    Save {
        input: Pipeline,
        target: StrLit,
        format: Option<Ident>,
        options: Option<Object>,
    },
    Show {
        input: Pipeline,
        limit: Option<IntLit>,
    },
}

/// `SOURCE | STEP | STEP ...`
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub source: Source,
    pub steps: Vec<Step>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub kind: SourceKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Name(Ident),
    Load(Load),
    Sql(StrLit),
    Pipeline(Box<Pipeline>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub path: StrLit,
    pub format: Option<Ident>,
    pub schema: Option<Vec<SchemaField>>,
    pub options: Option<Object>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchemaField {
    pub name: Ident,
    pub ty: TypeName,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    Named(String),
    Decimal(IntLit, IntLit),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypeName {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: StepKind,
    /// `with { ... }` planner hints.
    pub hints: Option<Object>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    Semi,
    Anti,
}

impl JoinKind {
    pub fn keyword(self) -> &'static str {
        match self {
            JoinKind::Inner => "inner",
            JoinKind::Left => "left",
            JoinKind::Right => "right",
            JoinKind::Full => "full",
            JoinKind::Semi => "semi",
            JoinKind::Anti => "anti",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Filter(Expr),
    Select(Vec<SelectItem>),
    Derive(Vec<Assign>),
    /// `kind` is `None` when the program did not write one (an inner join).
    Join {
        kind: Option<JoinKind>,
        right: Source,
        on: Vec<Expr>,
    },
    Group {
        keys: Vec<SelectItem>,
        aggregates: Vec<Assign>,
    },
    Sort(Vec<SortKey>),
    Take(IntLit),
    Distinct(Vec<ColumnRef>),
    Union(Source),
    Sql(StrLit),
    Train {
        kind: Ident,
        args: Vec<Arg>,
    },
    Infer {
        model: Source,
        batch: Option<IntLit>,
    },
    Evaluate {
        label: ColumnRef,
    },
}

impl StepKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::Filter(_) => "filter",
            StepKind::Select(_) => "select",
            StepKind::Derive(_) => "derive",
            StepKind::Join { .. } => "join",
            StepKind::Group { .. } => "group",
            StepKind::Sort(_) => "sort",
            StepKind::Take(_) => "take",
            StepKind::Distinct(_) => "distinct",
            StepKind::Union(_) => "union",
            StepKind::Sql(_) => "sql",
            StepKind::Train { .. } => "train",
            StepKind::Infer { .. } => "infer",
            StepKind::Evaluate { .. } => "evaluate",
        }
    }
}

/// `name = expr` or a bare `expr` (named after the column it reads).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub name: Option<Ident>,
    pub expr: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assign {
    pub name: Ident,
    pub expr: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub descending: bool,
    /// True when the program wrote `asc` or `desc` (kept by the formatter).
    pub explicit: bool,
    pub span: Span,
}

/// A named or positional argument of a call or of `train KIND(...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

/// `{ key = value, ... }` of `config`, hints and options.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub entries: Vec<Entry>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnRef {
    /// The table qualifier of `users.id`.
    pub qualifier: Option<Ident>,
    pub name: Ident,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        }
    }

    /// Binding strength; higher binds tighter (docs/language.md, expressions).
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => 4,
            BinaryOp::Add | BinaryOp::Sub => 5,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 6,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 4
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Float(f64),
    String(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    Column(ColumnRef),
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Call {
        name: Ident,
        args: Vec<Arg>,
    },
    If {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Cast {
        expr: Box<Expr>,
        ty: TypeName,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: StrLit,
        negated: bool,
    },
    List(Vec<Expr>),
    /// Parentheses the program wrote, kept so the formatter can reproduce them.
    Paren(Box<Expr>),
}

impl Expr {
    /// Whether the expression reads a column named `name` anywhere (qualified or not).
    pub fn reads_column(&self, name: &str) -> bool {
        match &self.kind {
            ExprKind::Literal(_) => false,
            ExprKind::Column(c) => c.name.name == name,
            ExprKind::Binary { lhs, rhs, .. } => lhs.reads_column(name) || rhs.reads_column(name),
            ExprKind::Unary { expr, .. }
            | ExprKind::Cast { expr, .. }
            | ExprKind::IsNull { expr, .. }
            | ExprKind::Like { expr, .. }
            | ExprKind::Paren(expr) => expr.reads_column(name),
            ExprKind::Call { args, .. } => args.iter().any(|a| a.value.reads_column(name)),
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => cond.reads_column(name) || then.reads_column(name) || otherwise.reads_column(name),
            ExprKind::InList { expr, list, .. } => {
                expr.reads_column(name) || list.iter().any(|e| e.reads_column(name))
            }
            ExprKind::List(items) => items.iter().any(|e| e.reads_column(name)),
        }
    }

    /// The column this expression reads when it is nothing but a column (`x`, `(x)`).
    pub fn as_column(&self) -> Option<&ColumnRef> {
        match &self.kind {
            ExprKind::Column(c) => Some(c),
            ExprKind::Paren(e) => e.as_column(),
            _ => None,
        }
    }
}
