#!/usr/bin/env bash
# Builds the VS Code extension in lsp/editors/vscode: installs its npm packages as
# package-lock.json pins them (from the npm registry only), checks its TextMate grammar with
# vscode-tmgrammar-test against the annotated programs in test/, and packages
# lsp/editors/vscode/flow-lang.vsix with vsce. Needs Node.js 20 and npm.
set -euo pipefail
cd "$(dirname "$0")/../lsp/editors/vscode"
if ! command -v npm >/dev/null; then
    echo "error: the extension needs Node.js 20 and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
npm run --silent test:grammar
npm run --silent package
echo "packaged $(pwd)/flow-lang.vsix; install it with: code --install-extension flow-lang.vsix"
