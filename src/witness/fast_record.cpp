#include "witness/fast_record.hpp"

namespace rtcmesh::witness {
namespace {

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  bool at_end() const { return i_ == s_.size(); }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  // A string without escapes or control characters (else false: use the slow path).
  bool plain_string(std::string_view& out) {
    if (!eat('"')) return false;
    size_t start = i_;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '"') {
        out = s_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      if (c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
      ++i_;
    }
    return false;
  }
  bool integer(int64_t& out) {
    bool neg = eat('-');
    size_t start = i_;
    int64_t v = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      if (i_ - start >= 16) return false;  // beyond 2^53: slow path decides
      v = v * 10 + (s_[i_] - '0');
      ++i_;
    }
    if (i_ == start || (i_ - start > 1 && s_[start] == '0')) return false;
    out = neg ? -v : v;
    return true;
  }
  // Skips one JSON value, checking structure; returns its raw bytes.
  bool value(std::string_view& raw, int depth = 0) {
    if (depth > 32 || i_ >= s_.size()) return false;
    size_t start = i_;
    char c = s_[i_];
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i_;
      if (eat(close)) {
        raw = s_.substr(start, i_ - start);
        return true;
      }
      for (;;) {
        std::string_view ignored;
        if (c == '{') {
          if (!any_string() || !eat(':')) return false;
        }
        if (!value(ignored, depth + 1)) return false;
        if (eat(close)) break;
        if (!eat(',')) return false;
      }
    } else if (c == '"') {
      if (!any_string()) return false;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      int64_t n;
      if (!integer(n)) return false;
      if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) return false;
    } else if (!literal("true") && !literal("false") && !literal("null")) {
      return false;
    }
    raw = s_.substr(start, i_ - start);
    return true;
  }

 private:
  bool literal(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool any_string() {
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (++i_ >= s_.size()) return false;
        char e = s_[i_];
        if (e == 'u') {
          if (i_ + 4 >= s_.size()) return false;
          for (size_t k = 1; k <= 4; ++k) {
            char h = s_[i_ + k];
            if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) {
              return false;
            }
          }
          i_ += 4;
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return false;
        }
      }
      ++i_;
    }
    return false;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

bool scan_record(std::string_view payload, RecordView& out) {
  Scanner sc(payload);
  if (!sc.eat('{')) return false;
  unsigned seen = 0;
  auto once = [&](unsigned bit) {
    if (seen & bit) return false;
    seen |= bit;
    return true;
  };
  std::string_view prev;
  for (;;) {
    std::string_view key;
    if (!sc.plain_string(key) || !sc.eat(':')) return false;
    bool ok;
    if (key == "seq")
      ok = once(1) && sc.integer(out.seq);
    else if (key == "ts_us")
      ok = once(2) && sc.integer(out.ts_us);
    else if (key == "mono_us")
      ok = once(4) && sc.integer(out.mono_us);
    else if (key == "v")
      ok = once(8) && sc.integer(out.v);
    else if (key == "prev")
      ok = once(16) && sc.plain_string(prev);
    else if (key == "event_type")
      ok = once(32) && sc.plain_string(out.event_type);
    else if (key == "agent")
      ok = once(64) && sc.plain_string(out.agent);
    else if (key == "data")
      ok = once(128) && sc.value(out.data_raw);
    else if (key == "metadata")
      ok = once(256) && sc.value(out.metadata_raw);
    else
      return false;  // unknown key: let the full parser judge
    if (!ok) return false;
    if (sc.eat('}')) break;
    if (!sc.eat(',')) return false;
  }
  if (!sc.at_end() || (seen & 127) != 127 || out.v != 1 || out.seq < 0) return false;
  return crypto::from_hex_into(prev, out.prev.data(), out.prev.size());
}

}  // namespace rtcmesh::witness
