--- Hearth: a local AI pair programmer for Neovim.
---
--- Starts `hearth lsp` for the configured filetypes and shows its suggestions as ghost text
--- (`vim.lsp.inline_completion`, Neovim 0.12+) or, on older Neovim, as completion items
--- (`vim.lsp.completion`). See editors/neovim/README.md.

local M = {}

local api = vim.api

---@class hearth.Keymaps
---@field accept string|false       accept the whole suggestion (falls back to the key itself)
---@field accept_line string|false  accept the suggestion up to the end of the current line
---@field accept_word string|false  accept the next word of the suggestion
---@field next string|false         show the next candidate
---@field prev string|false         show the previous candidate
---@field trigger string|false      ask for completion items (only without ghost text)

---@class hearth.Config
---@field cmd string[]
---@field filetypes string[]
---@field root_markers string[]
---@field settings table            the `hearth` settings (camelCase, as in the VS Code extension)
---@field keymaps hearth.Keymaps
---@field inline_completion boolean use ghost text when Neovim has vim.lsp.inline_completion
---@field completion_autotrigger boolean for the completion-item fallback
---@field completeopt string|false buffer-local 'completeopt' for the completion-item fallback
M.defaults = {
  cmd = { 'hearth', 'lsp' },
  filetypes = {
    'c', 'cpp', 'cs', 'css', 'go', 'html', 'java', 'javascript', 'javascriptreact', 'json',
    'kotlin', 'lua', 'markdown', 'php', 'python', 'ruby', 'rust', 'scala', 'sh', 'sql',
    'swift', 'toml', 'typescript', 'typescriptreact', 'yaml', 'zig',
  },
  root_markers = {
    '.hearth.toml', '.git', 'Cargo.toml', 'pyproject.toml', 'setup.py', 'package.json',
    'go.mod', 'pom.xml', 'build.gradle', 'CMakeLists.txt', 'Makefile',
  },
  settings = {},
  keymaps = {
    accept = '<Tab>',
    accept_line = '<C-l>',
    accept_word = '<M-l>',
    next = '<M-]>',
    prev = '<M-[>',
    trigger = '<C-Space>',
  },
  inline_completion = true,
  completion_autotrigger = true,
  -- A lone suggestion must still show a menu, and must not be inserted before it is chosen
  -- (<C-y>): otherwise Neovim inserts its first word and the rest never arrives.
  completeopt = 'menu,menuone,noinsert,popup',
}

---@type hearth.Config
M.config = vim.deepcopy(M.defaults)

--- Last `hearth/status` notification per client id.
---@type table<integer, {state: string, model: string, message: string?, lastLatencyMs: number?}>
M.status_by_client = {}

local group = api.nvim_create_augroup('hearth', { clear = true })

--- Whether this Neovim has LSP inline completion (ghost text).
function M.has_inline_completion()
  local ok, mod = pcall(require, 'vim.lsp.inline_completion')
  return ok and type(mod) == 'table' and type(mod.enable) == 'function'
end

--- The hearth clients, optionally only those attached to `bufnr`.
---@param bufnr? integer
---@return vim.lsp.Client[]
function M.clients(bufnr)
  return vim.lsp.get_clients({ name = 'hearth', bufnr = bufnr })
end

--- One line for a statusline, e.g. `hearth: ready SmolLM2 (180 ms)`.
---@return string
function M.statusline()
  local client = M.clients(0)[1] or M.clients()[1]
  if not client then
    return ''
  end
  local status = M.status_by_client[client.id]
  if not status then
    return 'hearth: starting'
  end
  local parts = { 'hearth: ' .. tostring(status.state) }
  if status.model and status.model ~= '' then
    table.insert(parts, status.model)
  end
  if type(status.lastLatencyMs) == 'number' then
    table.insert(parts, ('(%d ms)'):format(math.floor(status.lastLatencyMs + 0.5)))
  end
  return table.concat(parts, ' ')
end

local function on_status(_, params, ctx)
  if type(params) ~= 'table' then
    return
  end
  local previous = M.status_by_client[ctx.client_id]
  M.status_by_client[ctx.client_id] = params
  if params.state == 'error' and (not previous or previous.state ~= 'error') then
    vim.notify(
      ('hearth: %s'):format(params.message or 'the model backend failed'),
      vim.log.levels.ERROR
    )
  end
  api.nvim_exec_autocmds('User', { pattern = 'HearthStatus', data = params, modeline = false })
  vim.cmd.redrawstatus({ bang = true, mods = { emsg_silent = true } })
end

------------------------------------------------------------------------------------------------
-- Partial accept of inline completions
------------------------------------------------------------------------------------------------

--- The part of `item` that is not typed yet: the suggestion minus what lies between the start of
--- its range and the cursor. nil when that cannot be worked out (snippets, cursor elsewhere).
---@param item vim.lsp.inline_completion.Item
---@param bufnr integer
---@param row integer 0-based
---@param col integer 0-based byte column
---@return string?
function M._untyped_text(item, bufnr, row, col)
  local text = item.insert_text
  if type(text) ~= 'string' then
    return nil
  end
  if not item.range then
    return text
  end
  local start = item.range.start
  if start.row ~= row or start.col > col then
    return nil
  end
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, true)[1]
  local typed = line:sub(start.col + 1, col)
  if text:sub(1, #typed) ~= typed then
    return nil
  end
  return text:sub(#typed + 1)
end

--- The next piece of `rest` for partial accept.
---@param rest string
---@param unit 'word'|'line'
---@return string
function M._next_chunk(rest, unit)
  if unit == 'line' then
    local first_newline = rest:find('\n', 1, true)
    if not first_newline then
      return rest
    end
    if first_newline > 1 then
      return rest:sub(1, first_newline - 1)
    end
    -- The suggestion continues on the next line: take the line break and that line.
    local second_newline = rest:find('\n', 2, true)
    return second_newline and rest:sub(1, second_newline - 1) or rest
  end
  return rest:match('^%s*[%w_]+')
    or rest:match('^%s*[^%w_%s]+')
    or rest:match('^%s+')
    or rest
end

--- Inserts `text` at the cursor of the current window and puts the cursor after it.
local function insert_at_cursor(bufnr, row, col, text)
  local lines = vim.split(text, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local last_row = row + #lines - 1
  local last_col = (#lines == 1 and col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { last_row + 1, last_col })
end

--- What Neovim's own accept does (vim/lsp/inline_completion.lua, Completor:accept).
---@param item vim.lsp.inline_completion.Item
local function accept_whole(item, bufnr)
  local text = item.insert_text
  if type(text) ~= 'string' then
    vim.snippet.expand(text.value)
  elseif item.range then
    local lines = vim.split(text, '\n', { plain = true })
    local range = item.range
    api.nvim_buf_set_text(bufnr, range.start.row, range.start.col, range.end_.row, range.end_.col, lines)
    api.nvim_win_set_cursor(0, {
      range.start.row + #lines,
      (#lines == 1 and range.start.col or 0) + #lines[#lines],
    })
  else
    api.nvim_paste(text, false, 0)
  end
  if item.command then
    local client = vim.lsp.get_client_by_id(item.client_id)
    if client then
      client:exec_cmd(item.command, { bufnr = bufnr })
    end
  end
end

--- Accepts part of the current inline completion. Returns false when there is none.
---@param unit 'word'|'line'
---@return boolean
function M.accept_partial(unit)
  if not M.has_inline_completion() then
    return false
  end
  local bufnr = api.nvim_get_current_buf()
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      local cursor = api.nvim_win_get_cursor(0)
      local row, col = cursor[1] - 1, cursor[2]
      local rest = M._untyped_text(item, bufnr, row, col)
      if not rest or rest == '' then
        accept_whole(item, bufnr)
        return
      end
      local chunk = M._next_chunk(rest, unit)
      if chunk == rest then
        accept_whole(item, bufnr)
      else
        -- Neovim asks the server again once the cursor moves, so the rest comes back as ghost
        -- text by itself.
        insert_at_cursor(bufnr, row, col, chunk)
      end
    end,
  })
end

--- Accepts the whole current inline completion. Returns false when there is none.
---@return boolean
function M.accept()
  if not M.has_inline_completion() then
    return false
  end
  return vim.lsp.inline_completion.get()
end

------------------------------------------------------------------------------------------------
-- Attaching
------------------------------------------------------------------------------------------------

local function map(bufnr, lhs, fn, desc)
  if not lhs then
    return
  end
  vim.keymap.set('i', lhs, function()
    if fn() then
      return ''
    end
    return lhs
  end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = desc })
end

local function on_attach(client, bufnr)
  local keymaps = M.config.keymaps
  if M.config.inline_completion and M.has_inline_completion()
    and client:supports_method('textDocument/inlineCompletion', bufnr)
  then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    map(bufnr, keymaps.accept, M.accept, 'hearth: accept suggestion')
    map(bufnr, keymaps.accept_line, function() return M.accept_partial('line') end,
      'hearth: accept one line of the suggestion')
    map(bufnr, keymaps.accept_word, function() return M.accept_partial('word') end,
      'hearth: accept one word of the suggestion')
    for _, spec in ipairs({ { keymaps.next, 1 }, { keymaps.prev, -1 } }) do
      if spec[1] then
        vim.keymap.set('i', spec[1], function()
          vim.lsp.inline_completion.select({ bufnr = bufnr, count = spec[2] })
        end, { buffer = bufnr, desc = 'hearth: other suggestion' })
      end
    end
  elseif client:supports_method('textDocument/completion', bufnr) then
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = M.config.completion_autotrigger })
    if M.config.completeopt then
      pcall(function()
        vim.bo[bufnr].completeopt = M.config.completeopt
      end)
    end
    M._complete_multiline_items(client, bufnr)
    if keymaps.trigger then
      vim.keymap.set('i', keymaps.trigger, function()
        vim.lsp.completion.get()
      end, { buffer = bufnr, desc = 'hearth: ask for a suggestion' })
    end
  end
end

--- vim.lsp.completion inserts only the first word of a plain-text `textEdit` (its `word` is
--- `newText:match('^%S*')`), and a completion menu cannot insert line breaks. Hearth's items carry
--- whole (often multi-line) suggestions, so once one is accepted, put in the rest: replace the
--- text from the start of the item's range to the cursor with the full `newText`.
function M._complete_multiline_items(client, bufnr)
  api.nvim_create_autocmd('CompleteDone', {
    group = api.nvim_create_augroup('hearth.complete.' .. bufnr, { clear = true }),
    buffer = bufnr,
    callback = function()
      if vim.v.event.reason ~= 'accept' then
        return
      end
      local lsp_data = vim.tbl_get(vim.v.completed_item, 'user_data', 'nvim', 'lsp') or {}
      local item = lsp_data.completion_item
      if lsp_data.client_id ~= client.id or type(item) ~= 'table' or not item.textEdit
        or item.insertTextFormat == 2 -- snippets are expanded whole by Neovim itself
      then
        return
      end
      local new_text = item.textEdit.newText
      local start = item.textEdit.range and item.textEdit.range.start or item.textEdit.insert.start
      local cursor = api.nvim_win_get_cursor(0)
      local row, col = cursor[1] - 1, cursor[2]
      if start.line ~= row then
        return
      end
      local line = api.nvim_buf_get_lines(bufnr, row, row + 1, true)[1]
      local start_col = vim.str_byteindex(line, client.offset_encoding, start.character, false)
      if start_col > col or line:sub(start_col + 1, col) == new_text then
        return
      end
      local lines = vim.split(new_text, '\n', { plain = true })
      api.nvim_buf_set_text(bufnr, row, start_col, row, col, lines)
      api.nvim_win_set_cursor(0, {
        row + #lines,
        (#lines == 1 and start_col or 0) + #lines[#lines],
      })
    end,
  })
end

--- Starts (or reuses) the hearth client for `bufnr`.
---@param bufnr integer
---@return integer? client_id
function M.start(bufnr)
  if vim.bo[bufnr].buftype ~= '' then
    return nil
  end
  local name = api.nvim_buf_get_name(bufnr)
  local root_dir = vim.fs.root(bufnr, M.config.root_markers)
    or (name ~= '' and vim.fs.dirname(vim.fs.normalize(name)))
    or vim.uv.cwd()
  -- An empty Lua table would go out as a JSON array.
  local settings = next(M.config.settings) and M.config.settings or vim.empty_dict()
  return vim.lsp.start({
    name = 'hearth',
    cmd = M.config.cmd,
    root_dir = root_dir,
    init_options = { hearth = settings },
    settings = { hearth = settings },
    handlers = { ['hearth/status'] = on_status },
    on_attach = on_attach,
    on_exit = function(_, _, client_id)
      M.status_by_client[client_id] = nil
    end,
  }, { bufnr = bufnr })
end

--- Sends changed settings to the running servers.
---@param settings table
function M.update_settings(settings)
  M.config.settings = vim.tbl_deep_extend('force', M.config.settings, settings)
  for _, client in ipairs(M.clients()) do
    client.settings = { hearth = M.config.settings }
    client:notify('workspace/didChangeConfiguration', { settings = client.settings })
  end
end

--- Asks the server of the current buffer for `hearth/stats` (blocking, up to `timeout_ms`).
---@return table? stats, string? error
function M.stats(timeout_ms, bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local client = M.clients(bufnr)[1] or M.clients()[1]
  if not client then
    return nil, 'no hearth server is running'
  end
  local response, err = client:request_sync('hearth/stats', nil, timeout_ms or 3000, bufnr)
  if not response then
    return nil, tostring(err)
  end
  if response.err then
    return nil, response.err.message or vim.inspect(response.err)
  end
  return response.result
end

--- Asks for the context manifest at the cursor (`hearth/context`).
---@return table? manifest, string? error
function M.context(timeout_ms)
  local bufnr = api.nvim_get_current_buf()
  local client = M.clients(bufnr)[1]
  if not client then
    return nil, 'no hearth server is attached to this buffer'
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local response, err = client:request_sync('hearth/context', {
    textDocument = params.textDocument,
    position = params.position,
  }, timeout_ms or 5000, bufnr)
  if not response then
    return nil, tostring(err)
  end
  if response.err then
    return nil, response.err.message or vim.inspect(response.err)
  end
  return response.result
end

---@param opts? hearth.Config
function M.setup(opts)
  opts = opts or {}
  local keymaps = vim.tbl_extend('force', M.defaults.keymaps, opts.keymaps or {})
  M.config = vim.tbl_extend('force', vim.deepcopy(M.defaults), opts)
  M.config.keymaps = keymaps
  M.config.settings = vim.deepcopy(opts.settings or {})

  api.nvim_clear_autocmds({ group = group })
  api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = M.config.filetypes,
    callback = function(args)
      M.start(args.buf)
    end,
  })
  -- Buffers that were opened before setup() ran.
  local wanted = {}
  for _, ft in ipairs(M.config.filetypes) do
    wanted[ft] = true
  end
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and wanted[vim.bo[bufnr].filetype] then
      M.start(bufnr)
    end
  end
end

return M
