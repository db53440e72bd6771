-- Commands only; nothing starts until require('hearth').setup() is called.
if vim.g.loaded_hearth then
  return
end
vim.g.loaded_hearth = true

vim.api.nvim_create_user_command('HearthStatus', function()
  local line = require('hearth').statusline()
  vim.notify(line ~= '' and line or 'hearth: no server running')
end, { desc = 'Show the hearth model, state and last latency' })

vim.api.nvim_create_user_command('HearthContext', function()
  local manifest, err = require('hearth').context()
  if not manifest then
    vim.notify('hearth/context: ' .. tostring(err), vim.log.levels.WARN)
    return
  end
  local text = vim.json.encode(manifest)
  if vim.fn.executable('jq') == 1 then
    text = vim.fn.system({ 'jq', '.' }, text)
  end
  vim.cmd('botright new')
  vim.bo.buftype = 'nofile'
  vim.bo.bufhidden = 'wipe'
  vim.bo.filetype = 'json'
  vim.api.nvim_buf_set_lines(0, 0, -1, false, vim.split(text, '\n', { plain = true }))
end, { desc = 'Show which context hearth would send for the cursor position' })
