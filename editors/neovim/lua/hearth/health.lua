--- `:checkhealth hearth`
local M = {}

local health = vim.health

local function describe(value)
  if value == nil or value == vim.NIL then
    return 'n/a'
  end
  if type(value) == 'table' then
    return vim.inspect(value, { newline = ' ', indent = '' })
  end
  return tostring(value)
end

function M.check()
  local hearth = require('hearth')
  local config = hearth.config

  health.start('hearth: editor')
  local version = vim.version()
  if vim.fn.has('nvim-0.11') == 1 then
    health.ok(('Neovim %d.%d.%d'):format(version.major, version.minor, version.patch))
  else
    health.error('Neovim 0.11 or newer is required')
  end
  if hearth.has_inline_completion() then
    health.ok('ghost text: vim.lsp.inline_completion is available')
  else
    health.info('ghost text needs Neovim 0.12 (vim.lsp.inline_completion); using completion items')
  end

  health.start('hearth: server')
  local exe = config.cmd[1]
  local path = vim.fn.exepath(exe)
  if path ~= '' then
    health.ok(('server binary: %s'):format(path))
  else
    health.error(('server binary not found: %s'):format(exe), {
      'Install hearth, or pass its path: require("hearth").setup({ cmd = { "/path/to/hearth", "lsp" } })',
    })
  end

  local clients = hearth.clients()
  if #clients == 0 then
    health.warn('no hearth server is running', {
      ('Open a file of one of these filetypes: %s'):format(table.concat(config.filetypes, ', ')),
    })
    return
  end

  for _, client in ipairs(clients) do
    health.start(('hearth: client %d (%s)'):format(client.id, client.root_dir or 'no root'))
    health.info(('position encoding: %s'):format(client.offset_encoding))
    local status = hearth.status_by_client[client.id]
    if not status then
      health.warn('no hearth/status notification received yet')
    else
      local line = ('model: %s — sidecar state: %s'):format(describe(status.model), describe(status.state))
      if status.state == 'ready' then
        health.ok(line)
      elseif status.state == 'error' then
        health.error(line .. ' — ' .. describe(status.message))
      else
        health.warn(line)
      end
      if status.message and status.message ~= vim.NIL then
        health.info(('message: %s'):format(status.message))
      end
    end

    local bufnr = next(client.attached_buffers)
    -- hearth/stats takes no params.
    local response, err = client:request_sync('hearth/stats', nil, 3000, bufnr)
    local stats
    if not response then
      health.warn(('hearth/stats: %s'):format(describe(err)))
    elseif response.err then
      health.warn(('hearth/stats failed: %s'):format(describe(response.err.message or response.err)))
    else
      stats = response.result or {}
      health.ok('hearth/stats answered')
      health.info(('server: %s'):format(describe(stats.server)))
      health.info(('sidecar: %s'):format(describe(stats.sidecar)))
    end

    -- The latest of: the last hearth/status notification, the server's own counters.
    local latency = status and status.lastLatencyMs
    if type(latency) ~= 'number' then
      latency = vim.tbl_get(stats or {}, 'server', 'lastLatencyMs')
    end
    health.info(('last completion latency: %s'):format(
      type(latency) == 'number' and ('%d ms'):format(math.floor(latency + 0.5)) or 'n/a'
    ))
  end
end

return M
