-- reactor: the module scripts and the daemon use. It only gathers: the C
-- half is reactor.core; each concept of the Lua half has a module of its own.
--   reactor.protocol     Protocol, Factory, ClientFactory, ReconnectingClientFactory, asFactory
--   reactor.basic        LineReceiver, Int8/16/32StringReceiver, NetstringReceiver
--   reactor.loopingcall  LoopingCall
--   reactor.endpoints    listenTCP/UNIX, connectTCP/UNIX (Connector), stdio, stop
--   reactor.service      serve, check, state: a script served, its listeners
--   reactor.reload       generations, commit, the migrator
--   reactor.log          every record the Lua half writes
--   reactor.task         spawn, sleep, gather, timeout: tasks
--   reactor.stream       connect, serve(port, fn): coroutine streams
--   reactor.daemon       what `reactord SCRIPT` does
local core = require "reactor.core"
local protocol = require "reactor.protocol"
local endpoints = require "reactor.endpoints"
local service = require "reactor.service"
local task = require "reactor.task"
local stream = require "reactor.stream"

return {
  core = core,
  version = core.version,
  Protocol = protocol.Protocol,
  Factory = protocol.Factory,
  ClientFactory = protocol.ClientFactory,
  ReconnectingClientFactory = protocol.ReconnectingClientFactory,
  LineReceiver = require("reactor.basic").LineReceiver,
  Int8StringReceiver = require("reactor.basic").Int8StringReceiver,
  Int16StringReceiver = require("reactor.basic").Int16StringReceiver,
  Int32StringReceiver = require("reactor.basic").Int32StringReceiver,
  NetstringReceiver = require("reactor.basic").NetstringReceiver,
  LoopingCall = require("reactor.loopingcall").LoopingCall,
  callLater = core.callLater,
  run = core.run,
  iterate = core.iterate,
  stop = endpoints.stop,
  running = core.running,
  now = core.now,
  getpid = core.getpid,
  framing = core.framing,
  broadcast = core.broadcast,
  onSignal = core.onSignal,
  listenUDP = core.listenUDP,
  listenTCP = endpoints.listenTCP,
  listenUNIX = endpoints.listenUNIX,
  connectTCP = endpoints.connectTCP,
  connectUNIX = endpoints.connectUNIX,
  -- stdio(protocol) -> transport; stdio() -> a stream, for a task
  stdio = function(proto)
    if proto == nil then return stream.stdio() end
    return endpoints.stdio(proto)
  end,
  serve = stream.serve, -- serve(port | opts, fn), or serve(script path [, opts])
  spawn = task.spawn,
  sleep = task.sleep,
  gather = task.gather,
  timeout = task.timeout,
  connect = stream.connect,
  reload = service.reload,
  check = service.check,
  state = service.state,
}
