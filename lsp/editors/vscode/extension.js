// Starts `flowc lsp` for .flow files and adds the plan preview command.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function start() {
  const command = vscode.workspace.getConfiguration("flow").get("server.path", "flowc");
  client = new LanguageClient(
    "flow",
    "flow",
    { command, args: ["lsp"] },
    {
      documentSelector: [{ language: "flow" }],
      synchronize: {
        // Data files and models change what the checker knows.
        fileEvents: vscode.workspace.createFileSystemWatcher("**/*.{csv,parquet,json,arrow,model,onnx}"),
      },
    },
  );
  return client.start();
}

async function showPlan() {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== "flow") {
    return;
  }
  const target = vscode.workspace.getConfiguration("flow").get("plan.target", "") || undefined;
  const preview = await client.sendRequest("flow/plan", {
    textDocument: { uri: editor.document.uri.toString() },
    target,
  });
  const content = preview.plan ?? `no plan: ${preview.error}`;
  const document = await vscode.workspace.openTextDocument({ content, language: "plaintext" });
  await vscode.window.showTextDocument(document, vscode.ViewColumn.Beside, true);
}

function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("flow.showPlan", showPlan),
    vscode.commands.registerCommand("flow.restartServer", async () => {
      if (client) {
        await client.stop();
      }
      await start();
    }),
  );
  return start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
