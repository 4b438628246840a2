// The protocol's id rule (docs/signaling-protocol.md): rooms, peer ids and node
// ids match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$. One definition for the hub, the
// mesh and the apps. The browser client has its own copy in JavaScript
// (ID_RE in web/rtcmesh-client.js).
#pragma once

#include <string_view>

namespace rtcmesh::base {

bool is_valid_id(std::string_view id);

}  // namespace rtcmesh::base
