// Hearth for VS Code: starts `hearth lsp` through vscode-languageclient and adds what the
// generic client does not do by itself: the settings object, ghost text (LSP 3.18
// inlineCompletion, a proposed feature in vscode-languageclient 9), and a status bar item fed
// by `hearth/status`.

import * as vscode from 'vscode';
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { HearthStatus, settingsFromConfiguration, statusText, statusTooltip } from './settings';

const CLIENT_ONLY_SETTINGS = new Set(['serverPath']);

let client: LanguageClient | undefined;
let statusItem: vscode.StatusBarItem;
let output: vscode.OutputChannel;
let lastStatus: HearthStatus | undefined;

/** The `hearth` settings as the server knows them (camelCase, nested), client-only keys removed. */
function serverSettings(context: vscode.ExtensionContext): Record<string, unknown> {
  const properties = context.extension.packageJSON.contributes.configuration.properties as Record<string, unknown>;
  const keys = Object.keys(properties)
    .map((key) => key.replace(/^hearth\./, ''))
    .filter((key) => !CLIENT_ONLY_SETTINGS.has(key));
  const configuration = vscode.workspace.getConfiguration('hearth');
  return settingsFromConfiguration(keys, (key) => configuration.get(key));
}

function updateStatusItem(): void {
  const state = client?.state;
  if (!client || state === State.Stopped) {
    statusItem.text = '$(circle-slash) Hearth: stopped';
    statusItem.tooltip = 'The hearth server is not running. Click to show the output.';
    statusItem.command = 'hearth.showOutput';
  } else if (!lastStatus) {
    statusItem.text = '$(loading~spin) Hearth: starting';
    statusItem.tooltip = 'Starting hearth lsp…';
    statusItem.command = 'hearth.showOutput';
  } else {
    statusItem.text = statusText(lastStatus);
    statusItem.tooltip = statusTooltip(lastStatus);
    statusItem.command = 'hearth.showStats';
    statusItem.backgroundColor =
      lastStatus.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }
  statusItem.show();
}

function createClient(context: vscode.ExtensionContext): LanguageClient {
  const command = vscode.workspace.getConfiguration('hearth').get<string>('serverPath') || 'hearth';
  // No `transport`: with TransportKind.stdio the client appends `--stdio` to the arguments,
  // which `hearth lsp` does not take. Without it the client still talks over stdin/stdout.
  const serverOptions: ServerOptions = {
    run: { command, args: ['lsp'] },
    debug: { command, args: ['lsp'] },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    outputChannel: output,
    initializationOptions: { hearth: serverSettings(context) },
    middleware: {
      workspace: {
        // Answer workspace/configuration for `hearth` without the client-only keys.
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) {
            return answers;
          }
          return params.items.map((item, index) => {
            if (item.section === 'hearth') {
              return serverSettings(context);
            }
            if (item.section?.startsWith('hearth.')) {
              const key = item.section.slice('hearth.'.length);
              return CLIENT_ONLY_SETTINGS.has(key) ? null : answers[index];
            }
            return answers[index];
          });
        },
      },
    },
  };
  const languageClient = new LanguageClient('hearth', 'Hearth', serverOptions, clientOptions);
  // textDocument/inlineCompletion (LSP 3.18) is a proposed feature in vscode-languageclient 9:
  // this registers an InlineCompletionItemProvider that forwards to the server.
  languageClient.registerProposedFeatures();
  return languageClient;
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  lastStatus = undefined;
  client = createClient(context);
  const started = client;
  context.subscriptions.push(
    started.onDidChangeState(() => updateStatusItem()),
    started.onNotification('hearth/status', (params: HearthStatus) => {
      lastStatus = params;
      if (params.state === 'error' && params.message) {
        output.appendLine(`[hearth/status] error: ${params.message}`);
      }
      updateStatusItem();
    }),
  );
  updateStatusItem();
  try {
    await started.start();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    void vscode.window
      .showErrorMessage(
        `Hearth: could not start "${vscode.workspace.getConfiguration('hearth').get('serverPath')} lsp": ${message}. ` +
          'Install hearth or set "hearth.serverPath".',
        'Open Settings',
      )
      .then((choice) => {
        if (choice) {
          void vscode.commands.executeCommand('workbench.action.openSettings', 'hearth.serverPath');
        }
      });
  }
  updateStatusItem();
}

async function stopClient(): Promise<void> {
  const running = client;
  client = undefined;
  if (running && running.state !== State.Stopped) {
    await running.stop();
  }
}

async function showJson(title: string, value: unknown): Promise<void> {
  const document = await vscode.workspace.openTextDocument({
    language: 'json',
    content: `// ${title}\n${JSON.stringify(value, null, 2)}\n`,
  });
  await vscode.window.showTextDocument(document, { preview: true });
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel('Hearth');
  statusItem = vscode.window.createStatusBarItem('hearth.status', vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'Hearth';
  context.subscriptions.push(output, statusItem);

  context.subscriptions.push(
    vscode.commands.registerCommand('hearth.restart', async () => {
      await stopClient();
      await startClient(context);
    }),
    vscode.commands.registerCommand('hearth.showOutput', () => output.show(true)),
    vscode.commands.registerCommand('hearth.showStats', async () => {
      if (!client || client.state !== State.Running) {
        void vscode.window.showWarningMessage('Hearth: the server is not running.');
        return;
      }
      // hearth/stats takes no params.
      const stats = await client.sendRequest('hearth/stats');
      await showJson('hearth/stats', stats);
    }),
    vscode.commands.registerCommand('hearth.showContext', async () => {
      const editor = vscode.window.activeTextEditor;
      if (!client || client.state !== State.Running || !editor) {
        void vscode.window.showWarningMessage('Hearth: open a file while the server is running.');
        return;
      }
      const manifest = await client.sendRequest('hearth/context', {
        textDocument: { uri: editor.document.uri.toString() },
        position: client.code2ProtocolConverter.asPosition(editor.selection.active),
      });
      await showJson(`hearth/context for ${vscode.workspace.asRelativePath(editor.document.uri)}`, manifest);
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration('hearth')) {
        return;
      }
      if (event.affectsConfiguration('hearth.serverPath')) {
        await stopClient();
        await startClient(context);
        return;
      }
      if (client && client.state === State.Running) {
        await client.sendNotification('workspace/didChangeConfiguration', {
          settings: { hearth: serverSettings(context) },
        });
      }
    }),
  );

  await startClient(context);
}

export async function deactivate(): Promise<void> {
  await stopClient();
}
