#include "witness/query.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace rtcmesh::witness {

Result<int64_t> parse_since(std::string_view text) {
  const std::string s(text);
  if (s.empty()) return make_error("--since is empty");
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (end && *end == '\0' && errno == 0) {
    if (v < 0 || v > INT64_MAX / 1000000) return make_error("--since is out of range");
    return static_cast<int64_t>(v) * 1000000;
  }
  std::tm tm{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest || (*rest && std::strcmp(rest, "Z") != 0)) {
    return make_error("--since wants unix seconds or YYYY-MM-DDTHH:MM:SSZ");
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000000;
}

std::string iso_time(int64_t us) {
  time_t secs = static_cast<time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%06lldZ", buf, static_cast<long long>(us % 1000000));
  return out;
}

bool mentions_peer(const nlohmann::json& j, const std::string& peer) {
  if (!j.is_object()) return false;
  for (const char* k : {"peer_id", "peer", "remote_peer", "from", "to"}) {
    auto it = j.find(k);
    if (it != j.end() && it->is_string() && it->get_ref<const std::string&>() == peer) return true;
  }
  return false;
}

bool matches(const QueryFilter& filter, const Record& r) {
  if (!filter.type.empty() && r.event_type != filter.type) return false;
  if (!filter.peer.empty() && !mentions_peer(r.data, filter.peer) &&
      !mentions_peer(r.metadata, filter.peer)) {
    return false;
  }
  return r.ts_us >= filter.since_us;
}

QueryResult query_log(
    std::string_view log, const QueryFilter& filter,
    const std::function<void(const Record&, std::string_view payload)>& on_match) {
  QueryResult result;
  FrameReader reader(log);
  result.is_log = reader.magic_ok();
  if (!result.is_log) return result;
  for (;;) {
    Frame f = reader.next();
    if (f.status != Frame::Status::Ok) {
      if (f.status != Frame::Status::End) {
        result.stopped = f.problem.empty() ? "unreadable frame" : f.problem;
        result.stopped_at = f.offset;
      }
      return result;
    }
    auto r = parse_record(f.payload);
    if (!r) {
      result.unreadable.push_back(f.offset);
      continue;
    }
    if (!matches(filter, *r)) continue;
    ++result.matched;
    on_match(*r, f.payload);
  }
}

}  // namespace rtcmesh::witness
