// Selecting records of a witness log (`rtcmesh witness show|query`): by event
// type, by a peer id named in data or metadata, and by time. Pure: it reads the
// log's bytes and never writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.hpp"
#include "witness/format.hpp"

namespace rtcmesh::witness {

struct QueryFilter {
  std::string type;  // event_type, "" = any
  std::string peer;  // a peer id in data/metadata (peer_id, peer, remote_peer, from, to); "" = any
  int64_t since_us = 0;  // ts_us at or after this
};

// --since: unix seconds, or YYYY-MM-DDTHH:MM:SS[Z] (UTC); microseconds since the epoch.
Result<int64_t> parse_since(std::string_view text);
// "2026-12-07T05:38:39.000123Z" for microseconds since the epoch.
std::string iso_time(int64_t us);
// Whether the object `j` names `peer` in one of the peer fields.
bool mentions_peer(const nlohmann::json& j, const std::string& peer);
bool matches(const QueryFilter& filter, const Record& record);

struct QueryResult {
  bool is_log = false;  // false: the magic is missing (not a witness log)
  size_t matched = 0;
  // Frames that parse but hold no record (offsets), and where reading stopped
  // early (a torn tail, corrupt framing); "" when the log was read to its end.
  std::vector<size_t> unreadable;
  std::string stopped;
  size_t stopped_at = 0;
};

// Calls on_match(record, stored bytes) for each matching record, in log order.
QueryResult query_log(std::string_view log, const QueryFilter& filter,
                      const std::function<void(const Record&, std::string_view payload)>& on_match);

}  // namespace rtcmesh::witness
