//! JSON-RPC over standard input and output, framed with `Content-Length` headers as LSP
//! specifies. Unlike a strict reader it survives a malformed message: the client gets a
//! JSON-RPC error for it and the server reads on.

use lsp_server::Message;
use std::io::{BufRead, Write};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// What arrived from the client.
#[derive(Debug)]
pub enum Incoming {
    Message(Message),
    /// A frame whose body is not a JSON-RPC message; the text says why.
    Malformed(String),
}

/// The two directions of a connection.
pub struct Transport {
    pub receiver: Receiver<Incoming>,
    pub sender: Sender<Message>,
    output: Arc<Mutex<Box<dyn Write + Send>>>,
    writer: std::thread::JoinHandle<()>,
}

impl Transport {
    /// Standard input and output, each served by a thread.
    pub fn stdio() -> Transport {
        Transport::over(
            std::io::BufReader::new(std::io::stdin()),
            Box::new(std::io::stdout()),
        )
    }

    /// Any byte streams (tests use pipes and buffers).
    pub fn over(
        mut input: impl BufRead + Send + 'static,
        output: Box<dyn Write + Send>,
    ) -> Transport {
        let (incoming, receiver) = channel();
        std::thread::spawn(move || {
            loop {
                let next = match Message::read(&mut input) {
                    Ok(Some(message)) => Incoming::Message(message),
                    Ok(None) => break,
                    // The frame was consumed; report it and read the next one.
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        Incoming::Malformed(e.to_string())
                    }
                    Err(_) => break,
                };
                let exit = matches!(&next, Incoming::Message(Message::Notification(n)) if n.method == "exit");
                if incoming.send(next).is_err() || exit {
                    break;
                }
            }
        });
        let output = Arc::new(Mutex::new(output));
        let (sender, outgoing) = channel::<Message>();
        let shared = output.clone();
        let writer = std::thread::spawn(move || {
            for message in outgoing {
                let Ok(mut out) = shared.lock() else { break };
                if message.write(&mut *out).is_err() {
                    break;
                }
            }
        });
        Transport {
            receiver,
            sender,
            output,
            writer,
        }
    }

    /// Writes what is still queued, then closes the output.
    pub fn finish(self) {
        drop(self.sender);
        let _ = self.writer.join();
    }

    /// Answers a frame that was not a message with a JSON-RPC parse error (its id is unknown,
    /// so it is null, as JSON-RPC says).
    pub fn malformed(&self, problem: &str) {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": { "code": lsp_server::ErrorCode::ParseError as i32, "message": problem },
        })
        .to_string();
        if let Ok(mut out) = self.output.lock() {
            let _ = write!(out, "Content-Length: {}\r\n\r\n{body}", body.len());
            let _ = out.flush();
        }
    }
}
