-- Drives a headless Neovim through one end-to-end scenario against the real `hearth lsp`, using
-- Neovim's own LSP client and the plugin in editors/neovim. Run by test_neovim.py as
--   nvim --headless -u NONE -i NONE -n -c "luafile nvim_driver.lua"
-- and configured through environment variables (HEARTH_DRIVER_*). It writes what it saw to the
-- JSON file HEARTH_DRIVER_RESULTS; the Python side makes the assertions.
--
-- The scenario runs in a coroutine that yields to the event loop while it waits, so keys fed with
-- nvim_feedkeys are processed by Neovim's main loop exactly as if a user typed them (InsertEnter,
-- CursorMovedI and the inline completion debounce timer all fire for real).

local api = vim.api
local uv = vim.uv

local env = {
  scenario = assert(os.getenv('HEARTH_DRIVER_SCENARIO'), 'HEARTH_DRIVER_SCENARIO'),
  results = assert(os.getenv('HEARTH_DRIVER_RESULTS'), 'HEARTH_DRIVER_RESULTS'),
  file = assert(os.getenv('HEARTH_DRIVER_FILE'), 'HEARTH_DRIVER_FILE'),
  plugin = assert(os.getenv('HEARTH_DRIVER_PLUGIN'), 'HEARTH_DRIVER_PLUGIN'),
  hearth_bin = assert(os.getenv('HEARTH_BIN'), 'HEARTH_BIN'),
  server_stderr = os.getenv('HEARTH_DRIVER_SERVER_STDERR') or '/dev/null',
  timeout_ms = tonumber(os.getenv('HEARTH_DRIVER_TIMEOUT_MS') or '240000'),
}

local results = {
  scenario = env.scenario,
  nvim_version = tostring(vim.version()),
  notifications = {},
  statuses = {},
  inline_responses = {},
  completion_responses = {},
  done = false,
}

local finished = false
local function finish()
  if finished then
    return
  end
  finished = true
  if not results.done then
    -- Where the editor stood when things went wrong.
    pcall(function()
      results.debug = {
        mode = api.nvim_get_mode().mode,
        cursor = api.nvim_win_get_cursor(0),
        last_lines = api.nvim_buf_get_lines(0, -6, -1, false),
        pumvisible = vim.fn.pumvisible(),
        messages = vim.api.nvim_exec2('messages', { output = true }).output,
      }
    end)
  end
  local file = assert(io.open(env.results, 'w'))
  file:write(vim.json.encode(results))
  file:close()
  vim.cmd('qall!')
end

-- Watchdog: whatever happens, write what we have and leave.
vim.defer_fn(function()
  if not finished then
    results.error = results.error or ('driver watchdog fired after %d ms'):format(env.timeout_ms)
    finish()
  end
end, env.timeout_ms)

-- Keep vim.notify messages (e.g. "Spawning language server ... failed").
vim.notify = function(msg, level)
  table.insert(results.notifications, { message = tostring(msg), level = level })
end

local co ---@type thread

local function sleep(ms)
  vim.defer_fn(function()
    local ok, err = coroutine.resume(co)
    if not ok then
      results.error = results.error or tostring(err)
      results.traceback = debug.traceback(co)
      finish()
    end
  end, ms)
  coroutine.yield()
end

local deadline_ms = uv.hrtime() / 1e6 + env.timeout_ms - 5000

local client ---@type vim.lsp.Client?

--- Polls `cond` every 50 ms until it returns a truthy value; errors out after `timeout_ms`, or
--- at once when the server process has exited.
local function wait_for(what, cond, timeout_ms)
  local deadline = math.min(uv.hrtime() / 1e6 + (timeout_ms or 120000), deadline_ms)
  while true do
    local ok, value = pcall(cond)
    if ok and value then
      return value
    end
    if client and client:is_stopped() then
      error(('the hearth server exited while waiting for %s'):format(what))
    end
    if uv.hrtime() / 1e6 > deadline then
      error(('timed out waiting for %s%s'):format(what, ok and '' or (' (last error: ' .. tostring(value) .. ')')))
    end
    sleep(50)
  end
end

--- Sends a request through Neovim's client and waits (yielding) for its answer.
local function request(method, params, bufnr, timeout_ms)
  local answer
  local ok, request_id = client:request(method, params, function(err, result)
    answer = { err = err, result = result }
  end, bufnr)
  assert(ok, ('could not send %s'):format(method))
  wait_for(method .. ' answer (request ' .. tostring(request_id) .. ')', function()
    return answer
  end, timeout_ms)
  if answer.err then
    error(('%s failed: %s'):format(method, vim.inspect(answer.err)))
  end
  return answer.result
end

local function buffer_lines(bufnr)
  return api.nvim_buf_get_lines(bufnr, 0, -1, true)
end

local function feed(keys, mode)
  api.nvim_feedkeys(api.nvim_replace_termcodes(keys, true, false, true), mode or 'nt', false)
end

local inline_ns = api.nvim_create_namespace('nvim.lsp.inline_completion')

--- The ghost text Neovim shows in `bufnr`, as one string (first line + virtual lines), and where.
local function ghost_text(bufnr)
  local marks = api.nvim_buf_get_extmarks(bufnr, inline_ns, 0, -1, { details = true })
  if #marks == 0 then
    return nil
  end
  local _, row, col, details = unpack(marks[1])
  local first = {}
  for _, chunk in ipairs(details.virt_text or {}) do
    if chunk[2] == 'ComplHint' then
      table.insert(first, chunk[1])
    end
  end
  local lines = { table.concat(first) }
  for _, virt_line in ipairs(details.virt_lines or {}) do
    local parts = {}
    for _, chunk in ipairs(virt_line) do
      if chunk[2] == 'ComplHint' then
        table.insert(parts, chunk[1])
      end
    end
    table.insert(lines, table.concat(parts))
  end
  return { text = table.concat(lines, '\n'), row = row, col = col, count = #marks }
end

--- Records every successful textDocument/inlineCompletion answer, exactly as Neovim's
--- inline completion handler receives it (the handler keeps the last one and shows item 1).
local function record_inline_responses(the_client)
  local original_request = the_client.request
  the_client.request = function(self, method, params, handler, bufnr)
    if method == 'textDocument/completion' and handler then
      local inner = handler
      handler = function(err, result, ctx)
        if not err and result then
          table.insert(results.completion_responses, {
            position = params.position,
            items = result.items or result,
          })
        end
        return inner(err, result, ctx)
      end
    elseif method == 'textDocument/inlineCompletion' and handler then
      local inner = handler
      handler = function(err, result, ctx)
        if not err and result then
          local items = result.items or result
          table.insert(results.inline_responses, {
            position = params.position,
            items = items,
          })
        end
        return inner(err, result, ctx)
      end
    end
    return original_request(self, method, params, handler, bufnr)
  end
end

local function last_inline_items()
  local last = results.inline_responses[#results.inline_responses]
  return last and last.items or nil
end

------------------------------------------------------------------------------------------------

local function start_editor()
  vim.opt.runtimepath:prepend(env.plugin)
  vim.cmd('filetype on')
  vim.o.swapfile = false
  vim.o.autoindent = false -- the test types its own indentation
  vim.o.shortmess = vim.o.shortmess .. 'AI'

  -- Keep hold of the client object from the start, so that a server that dies before it
  -- initializes is reported as such (Neovim forgets exited clients).
  local original_start = vim.lsp.start
  vim.lsp.start = function(config, opts)
    local client_id = original_start(config, opts)
    if client_id and config.name == 'hearth' and not client then
      client = vim.lsp.get_client_by_id(client_id)
    end
    return client_id
  end

  local settings = vim.json.decode(os.getenv('HEARTH_DRIVER_SETTINGS') or '{}')
  local options = vim.json.decode(os.getenv('HEARTH_DRIVER_PLUGIN_OPTIONS') or '{}')
  require('hearth').setup(vim.tbl_extend('force', options, {
    -- `sh -c exec` keeps the server's PID and sends its stderr to a file the test can show.
    cmd = { 'sh', '-c', 'exec "$0" lsp 2>>"$1"', env.hearth_bin, env.server_stderr },
    settings = settings,
  }))

  -- Keep every hearth/status notification as well as the plugin's own bookkeeping.
  api.nvim_create_autocmd('User', {
    pattern = 'HearthStatus',
    callback = function(args)
      table.insert(results.statuses, args.data)
    end,
  })

  vim.cmd.edit(vim.fn.fnameescape(env.file))
  local bufnr = api.nvim_get_current_buf()
  results.filetype = vim.bo[bufnr].filetype

  client = wait_for('the hearth client to attach', function()
    local found = vim.lsp.get_clients({ name = 'hearth', bufnr = bufnr })[1]
    if not found and #results.notifications > 0 then
      error(results.notifications[#results.notifications].message)
    end
    return found and found.initialized and found or nil
  end, 60000)
  results.offset_encoding = client.offset_encoding
  results.root_dir = client.root_dir
  record_inline_responses(client)
  return bufnr
end

local scenarios = {}

function scenarios.attach(bufnr)
  local caps = client.server_capabilities
  results.server_info = client.server_info
  results.capabilities = {
    inline_completion = caps.inlineCompletionProvider ~= nil and caps.inlineCompletionProvider ~= false,
    completion = caps.completionProvider ~= nil,
    code_action = caps.codeActionProvider,
    execute_commands = caps.executeCommandProvider and caps.executeCommandProvider.commands or {},
    position_encoding = caps.positionEncoding,
  }
  results.inline_completion_enabled =
    vim.lsp.inline_completion.is_enabled({ bufnr = bufnr })
  results.tab_mapping = vim.fn.maparg('<Tab>', 'i', false, true).desc
  -- Settings reach the server through workspace/configuration too.
  results.client_settings = client.settings
end

--- Opens a new line at the end of the file and types a function header, the way a user would.
--- Keeps typing when the model has nothing to say, until ghost text shows.
local function type_until_ghost_text(bufnr)
  feed('Go<CR><CR>def total_with_tax(order: Order) -> int:<CR>    ')
  wait_for('insert mode with the typed function header', function()
    local lines = buffer_lines(bufnr)
    return api.nvim_get_mode().mode == 'i' and lines[#lines] == '    '
  end, 10000)

  local more = { 's', 'u', 'b', 't', 'o', 't', 'a', 'l', ' ', '=' }
  local ghost
  for attempt = 0, #more do
    local seen = #results.inline_responses
    -- Wait for an answer to the request made after the last key.
    wait_for('a textDocument/inlineCompletion answer', function()
      return #results.inline_responses > seen
    end, 180000)
    -- An older request may have been answered first (possibly empty, as superseded); give the
    -- one for the current position a moment to land too.
    sleep(500)
    local items = last_inline_items()
    if items and #items > 0 then
      ghost = wait_for('ghost text extmarks in namespace nvim.lsp.inline_completion', function()
        return ghost_text(bufnr)
      end, 10000)
      break
    end
    if attempt == #more then
      error('the server answered every inline completion request with no items')
    end
    feed(more[attempt + 1])
  end
  return ghost
end

local function snapshot_cursor()
  local cursor = api.nvim_win_get_cursor(0)
  return { row = cursor[1] - 1, col = cursor[2] }
end

function scenarios.ghost_text(bufnr)
  local ghost = type_until_ghost_text(bufnr)
  results.ghost = ghost
  results.item = last_inline_items()[1]
  results.cursor_before = snapshot_cursor()
  results.lines_before = buffer_lines(bufnr)
  local tick = api.nvim_buf_get_changedtick(bufnr)

  -- Accept through the plugin's <Tab> mapping (remapped keys, as typed).
  feed('<Tab>', 'mt')
  wait_for('the buffer to change after accepting', function()
    return api.nvim_buf_get_changedtick(bufnr) ~= tick
  end, 10000)
  sleep(100)
  results.lines_after = buffer_lines(bufnr)
  results.cursor_after = snapshot_cursor()
  results.mode_after = api.nvim_get_mode().mode
  feed('<Esc>')
end

function scenarios.accept_word(bufnr)
  local ghost = type_until_ghost_text(bufnr)
  results.ghost = ghost
  results.item = last_inline_items()[1]
  results.cursor_before = snapshot_cursor()
  results.lines_before = buffer_lines(bufnr)
  local tick = api.nvim_buf_get_changedtick(bufnr)

  feed('<M-l>', 'mt')
  wait_for('the buffer to change after accepting one word', function()
    return api.nvim_buf_get_changedtick(bufnr) ~= tick
  end, 10000)
  sleep(100)
  results.lines_after = buffer_lines(bufnr)
  results.cursor_after = snapshot_cursor()
  feed('<Esc>')
end

local function find_line(bufnr, pattern)
  for index, line in ipairs(buffer_lines(bufnr)) do
    if line:find(pattern) then
      return index - 1
    end
  end
  error('pattern not found in buffer: ' .. pattern)
end

local function text_edits_of(edit, uri)
  local edits = {}
  for edit_uri, list in pairs(edit.changes or {}) do
    if edit_uri == uri then
      vim.list_extend(edits, list)
    end
  end
  for _, change in ipairs(edit.documentChanges or {}) do
    if change.textDocument and change.textDocument.uri == uri then
      vim.list_extend(edits, change.edits)
    end
  end
  return edits
end

function scenarios.code_action(bufnr)
  -- Select the whole of discount_rate() in pricing.py.
  local first = find_line(bufnr, '^def discount_rate')
  local last = find_line(bufnr, '^def quote') - 1
  local uri = vim.uri_from_bufnr(bufnr)
  results.selection = { first, last }
  -- Whole lines: character 0 means the same in every position encoding.
  local range = { start = { line = first, character = 0 }, ['end'] = { line = last, character = 0 } }
  local actions = request('textDocument/codeAction', {
    textDocument = { uri = uri },
    range = range,
    context = { diagnostics = {}, triggerKind = 1 },
  }, bufnr, 180000) or {}
  results.listed = {}
  for _, action in ipairs(actions) do
    table.insert(results.listed, {
      title = action.title,
      kind = action.kind,
      is_command = type(action.command) == 'string',
      has_edit = action.edit ~= nil,
      has_data = action.data ~= nil,
      disabled = action.disabled,
    })
  end
  local chosen
  for _, action in ipairs(actions) do
    if not action.disabled and type(action.command) ~= 'string'
      and (action.kind or ''):match('^refactor') then
      chosen = action
      break
    end
  end
  chosen = chosen or actions[1]
  if not chosen then
    error('the server listed no code action for the selection')
  end
  results.chosen = { title = chosen.title, kind = chosen.kind, had_edit = chosen.edit ~= nil }
  results.resolve_provider = vim.tbl_get(client.server_capabilities, 'codeActionProvider', 'resolveProvider') == true

  results.lines_before = buffer_lines(bufnr)
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local resolved = chosen
  if type(chosen.command) ~= 'string' and not chosen.edit and results.resolve_provider then
    resolved = request('codeAction/resolve', chosen, bufnr, 180000)
    results.resolved = true
  end
  if resolved.edit then
    results.edits = text_edits_of(resolved.edit, uri)
    vim.lsp.util.apply_workspace_edit(resolved.edit, client.offset_encoding)
  end
  local command = type(resolved.command) == 'string' and resolved or resolved.command
  if command then
    results.command = command.command
    client:exec_cmd(command, { bufnr = bufnr })
  end
  wait_for('the code action to change the buffer', function()
    return api.nvim_buf_get_changedtick(bufnr) ~= tick
  end, 180000)
  sleep(200)
  results.lines_after = buffer_lines(bufnr)
end

function scenarios.diagnostics(bufnr)
  local uri = vim.uri_from_bufnr(bufnr)
  results.publishes = {}
  local original = vim.lsp.handlers['textDocument/publishDiagnostics']
  vim.lsp.handlers['textDocument/publishDiagnostics'] = function(err, params, ctx, ...)
    if params and params.uri == uri then
      table.insert(results.publishes, { diagnostics = params.diagnostics, version = params.version })
    end
    return original(err, params, ctx, ...)
  end

  -- A blatant bug for the reviewer to find.
  local lines = {
    '',
    '',
    'def average_price_cents(prices: list[int]) -> int:',
    '    total = 0',
    '    for price in prices:',
    '        total = price',
    '    return total / 0',
  }
  api.nvim_buf_set_lines(bufnr, -1, -1, true, lines)
  results.lines_saved = buffer_lines(bufnr)
  local publishes_before = #results.publishes
  vim.cmd.write()

  local function hearth_diagnostics(publish)
    local found = {}
    for _, diagnostic in ipairs(publish.diagnostics or {}) do
      if diagnostic.source == 'hearth' then
        table.insert(found, diagnostic)
      end
    end
    return found
  end
  wait_for('a textDocument/publishDiagnostics with source "hearth" after :write', function()
    for index = publishes_before + 1, #results.publishes do
      if #hearth_diagnostics(results.publishes[index]) > 0 then
        return true
      end
    end
  end, 180000)
  sleep(200)
  results.publishes_after_write = vim.list_slice(results.publishes, publishes_before + 1)
  results.vim_diagnostics = {}
  for _, diagnostic in ipairs(vim.diagnostic.get(bufnr)) do
    table.insert(results.vim_diagnostics, {
      source = diagnostic.source,
      lnum = diagnostic.lnum,
      col = diagnostic.col,
      end_lnum = diagnostic.end_lnum,
      end_col = diagnostic.end_col,
      message = diagnostic.message,
    })
  end
  results.lines_after = buffer_lines(bufnr)
end

function scenarios.context(bufnr)
  local row = find_line(bufnr, '^    subtotal = sum')
  api.nvim_win_set_cursor(0, { row + 1, 4 })
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  -- The workspace may still be being indexed right after start-up: ask again for a while until
  -- the manifest draws on models.py (which pricing.py imports Order and Category from).
  results.context_requests = 0
  local deadline = uv.hrtime() / 1e6 + 60000
  repeat
    local manifest = request('hearth/context', {
      textDocument = params.textDocument,
      position = params.position,
    }, bufnr, 120000)
    results.context_requests = results.context_requests + 1
    results.manifest_json = vim.json.encode(manifest)
    if results.manifest_json:find('models.py', 1, true) then
      break
    end
    sleep(2000)
  until uv.hrtime() / 1e6 > deadline
end

--- The completion-item path (Neovim 0.11, or `inline_completion = false`): ask with
--- vim.lsp.completion.get() as the plugin's trigger key does, pick the first item in the
--- completion menu and accept it with <C-y>.
function scenarios.completion_items(bufnr)
  results.inline_completion_enabled = vim.lsp.inline_completion.is_enabled({ bufnr = bufnr })
  feed('Go<CR><CR>def total_with_tax(order: Order) -> int:<CR>    ')
  wait_for('insert mode with the typed function header', function()
    local lines = buffer_lines(bufnr)
    return api.nvim_get_mode().mode == 'i' and lines[#lines] == '    '
  end, 10000)

  local more = { 'r', 'e', 't', 'u', 'r', 'n', ' ' }
  for attempt = 0, #more do
    results.lines_before = buffer_lines(bufnr)
    results.cursor_before = snapshot_cursor()
    local seen = #results.completion_responses
    vim.lsp.completion.get()
    wait_for('a textDocument/completion answer', function()
      return #results.completion_responses > seen
    end, 180000)
    local items = results.completion_responses[#results.completion_responses].items
    if #items > 0 then
      -- With the default 'completeopt' (no "menuone") a single match is inserted without a
      -- visible menu, so wait for completion mode rather than for the popup.
      wait_for('completion mode with the server\'s items', function()
        return #vim.fn.complete_info({ 'items' }).items > 0
      end, 10000)
      break
    end
    if attempt == #more then
      error('the server answered every completion request with no items')
    end
    feed(more[attempt + 1])
    sleep(300)
  end
  local info = vim.fn.complete_info({ 'items', 'selected' })
  results.menu = {}
  for _, menu_item in ipairs(info.items) do
    table.insert(results.menu, { word = menu_item.word, abbr = menu_item.abbr, menu = menu_item.menu })
  end
  results.menu_selected = info.selected

  api.nvim_create_autocmd('CompleteDone', {
    buffer = bufnr,
    once = true,
    callback = function()
      results.accepted_item = vim.tbl_get(vim.v.completed_item, 'user_data', 'nvim', 'lsp', 'completion_item')
      results.complete_reason = vim.v.event.reason
    end,
  })
  if info.selected == -1 then
    feed('<C-n>')
  end
  feed('<C-y>')
  wait_for('completion to end with an accepted item', function()
    return results.complete_reason ~= nil and vim.fn.complete_info({ 'mode' }).mode == ''
  end, 10000)
  sleep(300)
  results.lines_after = buffer_lines(bufnr)
  results.cursor_after = snapshot_cursor()
  feed('<Esc>')
end

function scenarios.checkhealth(bufnr)
  -- Let the server do one completion, so that there is a model state and a latency to report.
  type_until_ghost_text(bufnr)
  feed('<Esc>')
  wait_for('normal mode', function()
    return api.nvim_get_mode().mode == 'n'
  end, 5000)
  results.statusline = require('hearth').statusline()
  vim.cmd('checkhealth hearth')
  results.health = buffer_lines(0)
end

co = coroutine.create(function()
  local scenario = scenarios[env.scenario]
  if not scenario then
    error('unknown scenario: ' .. env.scenario)
  end
  local bufnr = start_editor()
  scenario(bufnr)
  results.done = true
  finish()
end)

local ok, err = coroutine.resume(co)
if not ok then
  results.error = tostring(err)
  results.traceback = debug.traceback(co)
  finish()
end
