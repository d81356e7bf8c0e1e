#pragma once

// The type-ID block and atoms of WeChat Hub (CAF 0.17.6 idioms; atoms <= 10 chars).

#include <string>

#include "caf/atom.hpp"
#include "caf/type_id.hpp"

CAF_BEGIN_TYPE_ID_BLOCK(wechat_hub, caf::first_custom_type_id)

  CAF_ADD_ATOM(wechat_hub, wh, get_atom, "get")
  CAF_ADD_ATOM(wechat_hub, wh, token_atom, "token")
  CAF_ADD_ATOM(wechat_hub, wh, ticket_atom, "ticket")
  CAF_ADD_ATOM(wechat_hub, wh, stale_atom, "stale")
  CAF_ADD_ATOM(wechat_hub, wh, refresh_atom, "refresh")
  CAF_ADD_ATOM(wechat_hub, wh, tick_atom, "tick")
  CAF_ADD_ATOM(wechat_hub, wh, call_atom, "call")
  CAF_ADD_ATOM(wechat_hub, wh, done_atom, "done")
  CAF_ADD_ATOM(wechat_hub, wh, put_atom, "put")
  CAF_ADD_ATOM(wechat_hub, wh, erase_atom, "erase")
  CAF_ADD_ATOM(wechat_hub, wh, state_atom, "state")
  CAF_ADD_ATOM(wechat_hub, wh, force_atom, "force")
  CAF_ADD_ATOM(wechat_hub, wh, vticket_atom, "vticket")
  CAF_ADD_ATOM(wechat_hub, wh, auth_atom, "auth")
  CAF_ADD_ATOM(wechat_hub, wh, revoke_atom, "revoke")
  CAF_ADD_ATOM(wechat_hub, wh, stop_atom, "stop")
  CAF_ADD_ATOM(wechat_hub, wh, repl_atom, "repl")
  CAF_ADD_ATOM(wechat_hub, wh, hello_atom, "hello")
  CAF_ADD_ATOM(wechat_hub, wh, sync_atom, "sync")
  CAF_ADD_ATOM(wechat_hub, wh, connect_atom, "connect")
  CAF_ADD_ATOM(wechat_hub, wh, import_atom, "import")
  CAF_ADD_ATOM(wechat_hub, wh, ready_atom, "ready")
  CAF_ADD_ATOM(wechat_hub, wh, park_atom, "park")
  CAF_ADD_ATOM(wechat_hub, wh, quota_atom, "quota")
  CAF_ADD_ATOM(wechat_hub, wh, idle_atom, "idle")
  CAF_ADD_ATOM(wechat_hub, wh, wake_atom, "wake")

CAF_END_TYPE_ID_BLOCK(wechat_hub)
