//! The server's state and its dispatch: one incoming message in, the messages to send out.
//! Each document is analysed at most once per version, on demand; a handler that fails
//! answers with a JSON-RPC error instead of taking the server down.

use crate::Environment;
use crate::analysis::{self, Analysis};
use crate::document::Document;
use crate::schemas::SchemaCache;
use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response, ResponseError};
use lsp_types::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

/// The parameters of the `flow/plan` request.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanParams {
    pub text_document: TextDocumentIdentifier,
    /// `local` or `lambda`; the program's `config` or `local` when left out.
    pub target: Option<String>,
}

/// The answer to `flow/plan`: the physical plan as `flowc plan` prints it, or why there is none.
#[derive(Debug, Deserialize, Serialize, PartialEq)]
pub struct PlanPreview {
    pub plan: Option<String>,
    pub error: Option<String>,
}

type Answer = Result<serde_json::Value, ResponseError>;

pub struct Server<'e> {
    environment: &'e dyn Environment,
    documents: HashMap<Uri, Document>,
    analyses: RefCell<HashMap<Uri, (i32, Rc<Analysis>)>>,
    schemas: SchemaCache,
    /// Documents whose diagnostics wait for the text to stop changing.
    pending: Vec<Uri>,
    initialized: bool,
    shut_down: bool,
    /// Set by `exit`: whether `shutdown` came first.
    exited: Option<bool>,
}

fn error(code: ErrorCode, message: impl Into<String>) -> ResponseError {
    ResponseError {
        code: code as i32,
        message: message.into(),
        data: None,
    }
}

fn json(value: impl Serialize) -> Answer {
    serde_json::to_value(value).map_err(|e| error(ErrorCode::InternalError, e.to_string()))
}

fn params<P: DeserializeOwned>(value: serde_json::Value) -> Result<P, ResponseError> {
    serde_json::from_value(value).map_err(|e| error(ErrorCode::InvalidParams, e.to_string()))
}

impl<'e> Server<'e> {
    pub fn new(environment: &'e dyn Environment) -> Self {
        Server {
            environment,
            documents: HashMap::new(),
            analyses: RefCell::new(HashMap::new()),
            schemas: SchemaCache::default(),
            pending: Vec::new(),
            initialized: false,
            shut_down: false,
            exited: None,
        }
    }

    /// Whether diagnostics are waiting to be published.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// `Some(clean)` once the client sent `exit`.
    pub fn exited(&self) -> Option<bool> {
        self.exited
    }

    /// Handles one message; returns the responses and notifications to send.
    pub fn handle(&mut self, message: Message) -> Vec<Message> {
        match message {
            Message::Request(request) => vec![Message::Response(self.request(request))],
            Message::Notification(notification) => {
                let method = notification.method.clone();
                guarded(&method, || self.notification(notification))
            }
            Message::Response(_) => Vec::new(),
        }
    }

    fn request(&mut self, request: Request) -> Response {
        let Request { id, method, params } = request;
        let answer = if method == "initialize" {
            self.initialized = true;
            json(capabilities())
        } else if !self.initialized {
            Err(error(
                ErrorCode::ServerNotInitialized,
                "the server has not been initialized",
            ))
        } else if self.shut_down {
            Err(error(
                ErrorCode::InvalidRequest,
                "the server is shutting down",
            ))
        } else if method == "shutdown" {
            self.shut_down = true;
            Ok(serde_json::Value::Null)
        } else {
            // A bug in one feature must not take the editor's server down with it.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.dispatch(&method, params)
            }))
            .unwrap_or_else(|_| {
                Err(error(
                    ErrorCode::InternalError,
                    format!("flow's language server failed answering `{method}`; this is a bug"),
                ))
            })
        };
        response(id, answer)
    }

    fn dispatch(&self, method: &str, value: serde_json::Value) -> Answer {
        match method {
            "textDocument/hover" => {
                let p: HoverParams = params(value)?;
                let at = &p.text_document_position_params;
                json(self.at(
                    &at.text_document.uri,
                    at.position,
                    |doc, analysis, offset| {
                        crate::hover::hover(analysis, offset).map(|(text, span)| Hover {
                            contents: HoverContents::Markup(MarkupContent {
                                kind: MarkupKind::Markdown,
                                value: text,
                            }),
                            range: Some(doc.range(span)),
                        })
                    },
                ))
            }
            "textDocument/completion" => {
                let p: CompletionParams = params(value)?;
                let at = &p.text_document_position;
                json(self.completion(&at.text_document.uri, at.position))
            }
            "textDocument/definition" => {
                let p: GotoDefinitionParams = params(value)?;
                let at = &p.text_document_position_params;
                let uri = &at.text_document.uri;
                json(self.at(uri, at.position, |doc, analysis, offset| {
                    let (_, span) = crate::navigation::binding_at(analysis, offset)?;
                    Some(GotoDefinitionResponse::Scalar(Location::new(
                        uri.clone(),
                        doc.range(span),
                    )))
                }))
            }
            "textDocument/references" => {
                let p: ReferenceParams = params(value)?;
                let at = &p.text_document_position;
                let uri = &at.text_document.uri;
                let with_declaration = p.context.include_declaration;
                json(self.at(uri, at.position, |doc, analysis, offset| {
                    let (name, bound) = crate::navigation::binding_at(analysis, offset)?;
                    let spans = crate::navigation::references(analysis, name);
                    Some(
                        spans
                            .into_iter()
                            .filter(|s| with_declaration || *s != bound)
                            .map(|s| Location::new(uri.clone(), doc.range(s)))
                            .collect::<Vec<_>>(),
                    )
                }))
            }
            "textDocument/prepareRename" => {
                let p: TextDocumentPositionParams = params(value)?;
                json(
                    self.at(&p.text_document.uri, p.position, |doc, analysis, offset| {
                        let (name, _) = crate::navigation::binding_at(analysis, offset)?;
                        let span = crate::navigation::references(analysis, name)
                            .into_iter()
                            .find(|s| s.start <= offset && offset <= s.end)?;
                        Some(PrepareRenameResponse::Range(doc.range(span)))
                    }),
                )
            }
            "textDocument/rename" => {
                let p: RenameParams = params(value)?;
                let at = &p.text_document_position;
                self.rename(&at.text_document.uri, at.position, &p.new_name)
            }
            "textDocument/documentSymbol" => {
                let p: DocumentSymbolParams = params(value)?;
                json(self.with_document(&p.text_document.uri, |doc, analysis| {
                    #[allow(deprecated)]
                    let symbols: Vec<DocumentSymbol> = crate::navigation::symbols(analysis)
                        .into_iter()
                        .map(|s| DocumentSymbol {
                            name: s.name,
                            detail: (!s.detail.is_empty()).then_some(s.detail),
                            kind: s.kind,
                            tags: None,
                            deprecated: None,
                            range: doc.range(s.span),
                            selection_range: doc.range(s.selection),
                            children: None,
                        })
                        .collect();
                    Some(DocumentSymbolResponse::Nested(symbols))
                }))
            }
            "textDocument/semanticTokens/full" => {
                let p: SemanticTokensParams = params(value)?;
                json(self.with_document(&p.text_document.uri, |doc, analysis| {
                    Some(SemanticTokensResult::Tokens(SemanticTokens {
                        result_id: None,
                        data: crate::tokens::tokens(doc, analysis),
                    }))
                }))
            }
            "textDocument/formatting" => {
                let p: DocumentFormattingParams = params(value)?;
                json(self.with_document(&p.text_document.uri, |doc, _| {
                    let parsed = flow_lang::parse(&doc.text);
                    // A program with syntax errors is left as it is: formatting would drop
                    // the statements that did not parse.
                    if !parsed.diagnostics.is_empty() {
                        return None;
                    }
                    let formatted = flow_lang::format::format_program(&doc.text, &parsed.program);
                    Some(if formatted == doc.text {
                        Vec::new()
                    } else {
                        vec![TextEdit::new(doc.full_range(), formatted)]
                    })
                }))
            }
            "textDocument/codeAction" => {
                let p: CodeActionParams = params(value)?;
                let uri = &p.text_document.uri;
                json(self.with_document(uri, |doc, analysis| {
                    let span = doc.span(p.range);
                    Some(
                        crate::actions::actions(uri, doc, analysis, span)
                            .into_iter()
                            .map(CodeActionOrCommand::CodeAction)
                            .collect::<Vec<_>>(),
                    )
                }))
            }
            "flow/plan" => {
                let p: PlanParams = params(value)?;
                let preview = self.with_document(&p.text_document.uri, |_, analysis| {
                    Some(
                        match crate::preview::plan(self.environment, analysis, p.target.as_deref())
                        {
                            Ok(plan) => PlanPreview {
                                plan: Some(plan),
                                error: None,
                            },
                            Err(e) => PlanPreview {
                                plan: None,
                                error: Some(e),
                            },
                        },
                    )
                });
                match preview {
                    Some(p) => json(p),
                    None => Err(error(
                        ErrorCode::InvalidParams,
                        format!("`{}` is not open", p.text_document.uri.as_str()),
                    )),
                }
            }
            _ => Err(error(
                ErrorCode::MethodNotFound,
                format!("flow's language server does not handle `{method}`"),
            )),
        }
    }

    fn notification(&mut self, notification: Notification) -> Vec<Message> {
        let Notification { method, params } = notification;
        match method.as_str() {
            "exit" => {
                self.exited = Some(self.shut_down);
                Vec::new()
            }
            "textDocument/didOpen" => {
                let Ok(p) = serde_json::from_value::<DidOpenTextDocumentParams>(params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                // A reopened document may reuse a version number with another text.
                self.analyses.borrow_mut().remove(&uri);
                self.documents.insert(
                    uri.clone(),
                    Document::new(p.text_document.text, p.text_document.version),
                );
                self.pending.retain(|u| *u != uri);
                self.publish(&uri).into_iter().collect()
            }
            "textDocument/didChange" => {
                let Ok(p) = serde_json::from_value::<DidChangeTextDocumentParams>(params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                if let Some(doc) = self.documents.get_mut(&uri) {
                    for change in p.content_changes {
                        doc.apply(change);
                    }
                    doc.version = p.text_document.version;
                    if !self.pending.contains(&uri) {
                        self.pending.push(uri);
                    }
                }
                Vec::new()
            }
            "textDocument/didClose" => {
                let Ok(p) = serde_json::from_value::<DidCloseTextDocumentParams>(params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                self.documents.remove(&uri);
                self.analyses.borrow_mut().remove(&uri);
                self.pending.retain(|u| *u != uri);
                vec![publish(uri, Vec::new(), None)]
            }
            "textDocument/didSave" | "workspace/didChangeWatchedFiles" => {
                // A data file or a model may have changed: read schemas again.
                self.schemas.clear();
                self.analyses.borrow_mut().clear();
                let open: Vec<Uri> = self.documents.keys().cloned().collect();
                open.iter().filter_map(|uri| self.publish(uri)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Publishes the diagnostics of the documents that stopped changing.
    pub fn publish_pending(&mut self) -> Vec<Message> {
        let pending = std::mem::take(&mut self.pending);
        guarded("publishing diagnostics", || {
            pending.iter().filter_map(|uri| self.publish(uri)).collect()
        })
    }

    fn publish(&self, uri: &Uri) -> Option<Message> {
        self.with_document(uri, |doc, analysis| {
            let diagnostics = analysis
                .diagnostics
                .iter()
                .map(|d| crate::convert::diagnostic(uri, doc, d))
                .collect();
            Some(publish(uri.clone(), diagnostics, Some(doc.version)))
        })
    }

    /// The analysis of the document's current version.
    fn analysis(&self, uri: &Uri, doc: &Document) -> Rc<Analysis> {
        if let Some((version, analysis)) = self.analyses.borrow().get(uri)
            && *version == doc.version
        {
            return analysis.clone();
        }
        let analysis = Rc::new(self.analyse(uri, &doc.text));
        self.analyses
            .borrow_mut()
            .insert(uri.clone(), (doc.version, analysis.clone()));
        analysis
    }

    fn analyse(&self, uri: &Uri, text: &str) -> Analysis {
        let base = base_folder(uri);
        let schemas = self.schemas.source(&base, self.environment.schemas(&base));
        analysis::analyse(text, &schemas)
    }

    fn with_document<R>(
        &self,
        uri: &Uri,
        f: impl FnOnce(&Document, &Analysis) -> Option<R>,
    ) -> Option<R> {
        let doc = self.documents.get(uri)?;
        let analysis = self.analysis(uri, doc);
        f(doc, &analysis)
    }

    fn at<R>(
        &self,
        uri: &Uri,
        position: Position,
        f: impl FnOnce(&Document, &Analysis, usize) -> Option<R>,
    ) -> Option<R> {
        self.with_document(uri, |doc, analysis| f(doc, analysis, doc.offset(position)))
    }

    fn completion(&self, uri: &Uri, position: Position) -> Option<CompletionResponse> {
        let base = base_folder(uri);
        self.at(uri, position, |doc, analysis, offset| {
            let reanalyse = |text: &str| self.analyse(uri, text);
            let list = |folder: &std::path::Path| self.environment.list(folder);
            let items = crate::completion::complete(&crate::completion::Context {
                text: &doc.text,
                offset,
                analysis,
                reanalyse: &reanalyse,
                list: &list,
                base: &base,
            });
            Some(CompletionResponse::Array(items))
        })
    }

    fn rename(&self, uri: &Uri, position: Position, new_name: &str) -> Answer {
        let edit = self.at(uri, position, |doc, analysis, offset| {
            let (name, _) = crate::navigation::binding_at(analysis, offset)?;
            if let Some(problem) = crate::navigation::rename_problem(analysis, name, new_name) {
                return Some(Err(problem));
            }
            let edits = crate::navigation::references(analysis, name)
                .into_iter()
                .map(|s| TextEdit::new(doc.range(s), new_name.to_string()))
                .collect();
            Some(Ok(WorkspaceEdit {
                changes: Some(HashMap::from([(uri.clone(), edits)])),
                ..Default::default()
            }))
        });
        match edit {
            None => Ok(serde_json::Value::Null),
            Some(Ok(edit)) => json(edit),
            Some(Err(problem)) => Err(error(ErrorCode::RequestFailed, problem)),
        }
    }
}

/// Runs work no request waits for; a bug in it becomes an error in the client's log, not the
/// end of the server.
fn guarded(what: &str, work: impl FnOnce() -> Vec<Message>) -> Vec<Message> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
        vec![Message::Notification(Notification::new(
            "window/logMessage".into(),
            LogMessageParams {
                typ: MessageType::ERROR,
                message: format!("flow's language server failed handling `{what}`; this is a bug"),
            },
        ))]
    })
}

fn response(id: RequestId, answer: Answer) -> Response {
    Response {
        id,
        response_result: answer,
    }
}

fn publish(uri: Uri, diagnostics: Vec<Diagnostic>, version: Option<i32>) -> Message {
    Message::Notification(Notification::new(
        "textDocument/publishDiagnostics".into(),
        PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        },
    ))
}

/// The folder a document's relative paths are resolved in: its own folder for a file, else
/// the current folder.
fn base_folder(uri: &Uri) -> PathBuf {
    let is_file = uri
        .scheme()
        .is_some_and(|s| s.as_str().eq_ignore_ascii_case("file"));
    if is_file {
        let path = uri
            .path()
            .as_estr()
            .decode()
            .into_string_lossy()
            .into_owned();
        if let Some(parent) = std::path::Path::new(&path).parent() {
            return parent.to_path_buf();
        }
    }
    PathBuf::from(".")
}

fn capabilities() -> InitializeResult {
    InitializeResult {
        capabilities: ServerCapabilities {
            position_encoding: Some(PositionEncodingKind::UTF16),
            text_document_sync: Some(TextDocumentSyncCapability::Options(
                TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(TextDocumentSyncKind::INCREMENTAL),
                    save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                    ..Default::default()
                },
            )),
            hover_provider: Some(HoverProviderCapability::Simple(true)),
            completion_provider: Some(CompletionOptions {
                trigger_characters: Some(
                    ["|", ".", "\"", "/", "(", "[", ",", "{"]
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                ),
                ..Default::default()
            }),
            definition_provider: Some(OneOf::Left(true)),
            references_provider: Some(OneOf::Left(true)),
            rename_provider: Some(OneOf::Right(RenameOptions {
                prepare_provider: Some(true),
                work_done_progress_options: Default::default(),
            })),
            document_symbol_provider: Some(OneOf::Left(true)),
            document_formatting_provider: Some(OneOf::Left(true)),
            code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
                code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                ..Default::default()
            })),
            semantic_tokens_provider: Some(
                SemanticTokensServerCapabilities::SemanticTokensOptions(SemanticTokensOptions {
                    legend: crate::tokens::legend(),
                    full: Some(SemanticTokensFullOptions::Bool(true)),
                    range: None,
                    work_done_progress_options: Default::default(),
                }),
            ),
            ..Default::default()
        },
        server_info: Some(ServerInfo {
            name: "flow".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
    }
}
