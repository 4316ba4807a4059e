-- chat_frame_once.lua: examples/chat.lua with one change, for bench/README.md's
-- "Where the time goes": a message is framed once and the same bytes written
-- to every member (transport:write), instead of sendString re-framing it for
-- each one. Same wire format; rd_loadgen -m chat checks it the same way.
--
-- (examples/chat.lua's own header follows.)
-- chat.lua: seed 001's select chat room (2_3_chat_server_with_select.py).
--
--   reactord examples/chat.lua                serves it on 127.0.0.1:8800
--   lua5.4 examples/chat_client.lua alice     a member (another terminal each)
--
-- Frames are Int32StringReceiver's: a 4-byte big-endian length, then UTF-8
-- text (the seed's htonl prefix, without Python's pickle).
--
-- A client's first frame is "NAME: alice"; the room answers
-- "CLIENT: 127.0.0.1", the client's host, as the seed's str(address[0]) does
-- (the host alone, without the port: the seed's tuple, address[0]), and tells
-- the others "\n(Connected: New client (N) from alice@127.0.0.1)", N being
-- the number of members with the new one (the seed's self.clients). Every
-- later frame is a message: "hi" reaches every other member as
-- "\n#[alice@127.0.0.1]>>hi", never its sender (an empty frame is nothing to
-- say, and is not relayed). When a member leaves, however it leaves, the
-- rest get "\n(Now hung up: Client from alice@127.0.0.1)".
--
-- Where the seed is silent or crashes:
-- - A first frame that is not "NAME: <name>", or a name that is empty, longer
--   than MAX_NAME bytes, not UTF-8, or holds a control character (a newline
--   would let a name forge a notice), is answered with one frame
--   "ERROR: <why>" and the connection is closed; the room never hears of it.
-- - A member that never reads cannot stall the room or grow its memory:
--   writes to it queue in the core, reading from it pauses at the high water
--   mark (64 KiB), and once MAX_OUTPUT bytes are queued for it the core drops
--   it (logged: "aborted HOST:PORT: more than 262144 bytes of output queued
--   for a peer that does not read"), and the rest are told it hung up. So a
--   member costs at most MAX_OUTPUT plus one message; nobody else waits.
--   (Dropping rather than skipping its messages while paused: a member of a
--   chat either has the whole conversation or knows it left.)
-- - A frame longer than MAX_LENGTH (Twisted's 99999) is logged and closes
--   that connection (the string receivers' lengthLimitExceeded).
-- - SIGTERM closes every member's connection (shutdownRequested), as the
--   seed's SIGINT handler closes every client socket.
local reactor = require "reactor"

local MAX_NAME = 32 -- bytes
local MAX_OUTPUT = 256 * 1024 -- bytes queued for one member before it is dropped

local Chat = reactor.Int32StringReceiver:extend()

-- "alice@127.0.0.1", as the seed's get_client_name
function Chat:fullname()
  return self.name .. "@" .. self.host
end

-- send `msg` to every member but `except`: framed once, the same bytes to each
local function broadcast(room, msg, except)
  local frame = (">I4"):pack(#msg) .. msg
  for _, m in ipairs(room) do
    if m ~= except then m.transport:write(frame) end
  end
end

local function badname(name)
  if name == "" then return "the name is empty" end
  if #name > MAX_NAME then return ("the name is %d bytes; at most %d"):format(#name, MAX_NAME) end
  if not utf8.len(name) or name:find("%c") then return "the name must be UTF-8 text without control characters" end
end

function Chat:connectionMade()
  local peer = self.transport:getPeer()
  self.host, self.port = peer.host, peer.port
  io.stdout:write(("Chat server: got connection from %s:%d\n"):format(self.host, self.port))
  io.stdout:flush()
end

function Chat:refuse(why)
  self:sendString("ERROR: " .. why .. ' (the first frame must be "NAME: <name>", a name of 1 to '
    .. MAX_NAME .. " bytes)")
  self.transport:loseConnection()
end

function Chat:stringReceived(s)
  local room = self.factory.members
  if not self.name then
    local name = s:match("^NAME: (.*)$")
    if not name then return self:refuse("say your name first") end
    local why = badname(name)
    if why then return self:refuse(why) end
    self.name = name
    self:sendString("CLIENT: " .. self.host)
    room[#room + 1] = self
    broadcast(room, ("\n(Connected: New client (%d) from %s)"):format(#room, self:fullname()), self)
  elseif s ~= "" then
    broadcast(room, "\n#[" .. self:fullname() .. "]>>" .. s, self)
  end
end

function Chat:connectionLost(reason)
  io.stdout:write(("Chat server: %s:%d hung up (%s)\n"):format(self.host, self.port, reason.type))
  io.stdout:flush()
  if not self.name then return end
  local room = self.factory.members
  for i, m in ipairs(room) do
    if m == self then table.remove(room, i) break end
  end
  broadcast(room, "\n(Now hung up: Client from " .. self:fullname() .. ")")
end

function Chat:shutdownRequested()
  self.transport:loseConnection()
end

return reactor.Factory {
  protocol = Chat,
  port = 8800, -- the seed's --port=8800
  maxOutput = MAX_OUTPUT,
  members = {}, -- in the order they joined; a factory field, so a reload keeps it
}
