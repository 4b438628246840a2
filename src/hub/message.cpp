#include "hub/message.hpp"

#include <array>
#include <bit>
#include <cstring>
#include <type_traits>

namespace rtcmesh::hub {
namespace {

enum class Kind : uint8_t { String, Number, Object, Array, True, False, Null };

// Filled by scan_top_level for the first `count` slots only. Trivially constructible
// (raw pointers, not string_views) so that a parse does not pay for clearing 64.
struct Member {
  const char* key_data;
  size_t key_size;
  const char* value_data;
  size_t value_size;
  Kind kind;
  bool integer;  // a Number without fraction or exponent

  std::string_view key() const { return {key_data, key_size}; }        // decoded name
  std::string_view value() const { return {value_data, value_size}; }  // raw JSON
};
static_assert(std::is_trivially_default_constructible_v<Member>);

// More top-level members than this is refused as bad_message (it also bounds the
// duplicate-name check).
constexpr size_t kMaxMembers = 64;

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A strict RFC 8259 recogniser. Text is assumed to be valid UTF-8 (the WebSocket
// layer checks every text frame).
class Scanner {
 public:
  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  const char* pos() const { return p_; }
  bool at_end() const { return p_ == end_; }

  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool consume(char c) {
    if (p_ != end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  char peek() const { return p_ != end_ ? *p_ : '\0'; }

  // p_ at the opening quote. When decoded is given, the string's value is stored there.
  bool string(std::string* decoded, bool& escaped) {
    escaped = false;
    if (!consume('"')) return false;
    const char* run = p_;
    for (;;) {
      skip_plain();
      // Validation only (SDP, mostly): step over one-letter escapes such as the
      // "\\r\\n" of every SDP line without the decoding switch below.
      if (!decoded) {
        while (end_ - p_ >= 2 && p_[0] == '\\' && is_short_escape(p_[1])) {
          escaped = true;
          p_ += 2;
          skip_plain();
        }
      }
      if (p_ == end_) return false;
      const char c = *p_;
      if (c == '"') {
        if (decoded) decoded->append(run, p_);
        ++p_;
        return true;
      }
      if (c != '\\') return false;  // a control character
      escaped = true;
      if (decoded) decoded->append(run, p_);
      ++p_;
      if (p_ == end_) return false;
      const char e = *p_++;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          if (decoded) decoded->push_back(e);
          break;
        case 'b':
          if (decoded) decoded->push_back('\b');
          break;
        case 'f':
          if (decoded) decoded->push_back('\f');
          break;
        case 'n':
          if (decoded) decoded->push_back('\n');
          break;
        case 'r':
          if (decoded) decoded->push_back('\r');
          break;
        case 't':
          if (decoded) decoded->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          // Lone surrogates are refused: a peer's JSON library may throw on them.
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low;
            if (!consume('\\') || !consume('u') || !hex4(low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          if (decoded) append_utf8(*decoded, cp);
          break;
        }
        default:
          return false;
      }
      run = p_;
    }
  }

  // Moves p_ to the next quote, backslash or control character (or the end), eight
  // bytes at a time. In each test the lowest flagged byte is exact (a borrow only
  // runs upwards from a real hit), so p_ jumps straight to it.
  void skip_plain() {
    constexpr uint64_t ones = 0x0101010101010101ULL;
    constexpr uint64_t highs = 0x8080808080808080ULL;
    while (end_ - p_ >= 8) {
      uint64_t w;
      std::memcpy(&w, p_, 8);
      const uint64_t q = w ^ (ones * '"');
      const uint64_t b = w ^ (ones * '\\');
      const uint64_t hit =
          (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) & highs;
      if (hit != 0) {
        p_ += first_flagged_byte(hit);
        return;
      }
      p_ += 8;
    }
    while (p_ != end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20) ++p_;
  }

  static bool is_short_escape(char e) {
    switch (e) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        return true;
      default:
        return false;
    }
  }

  static size_t first_flagged_byte(uint64_t hit) {
    if constexpr (std::endian::native == std::endian::little) {
      return static_cast<size_t>(std::countr_zero(hit)) / 8;
    } else {
      return static_cast<size_t>(std::countl_zero(hit)) / 8;
    }
  }

  bool number(bool& integer) {
    integer = true;
    consume('-');
    if (consume('0')) {
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++p_;
    } else {
      return false;
    }
    if (consume('.')) {
      integer = false;
      if (!(peek() >= '0' && peek() <= '9')) return false;
      while (peek() >= '0' && peek() <= '9') ++p_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integer = false;
      ++p_;
      if (peek() == '+' || peek() == '-') ++p_;
      if (!(peek() >= '0' && peek() <= '9')) return false;
      while (peek() >= '0' && peek() <= '9') ++p_;
    }
    return true;
  }

  bool literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // Any value; p_ at its first byte (whitespace skipped).
  bool value(size_t depth, Kind& kind, bool& integer) {
    integer = false;
    bool escaped;
    switch (peek()) {
      case '"':
        kind = Kind::String;
        return string(nullptr, escaped);
      case '{':
        kind = Kind::Object;
        return object(depth + 1);
      case '[':
        kind = Kind::Array;
        return array(depth + 1);
      case 't':
        kind = Kind::True;
        return literal("true");
      case 'f':
        kind = Kind::False;
        return literal("false");
      case 'n':
        kind = Kind::Null;
        return literal("null");
      default:
        kind = Kind::Number;
        return number(integer);
    }
  }

  bool object(size_t depth) {
    if (depth > kMaxJsonDepth || !consume('{')) return false;
    skip_ws();
    if (consume('}')) return true;
    for (;;) {
      bool escaped;
      if (!string(nullptr, escaped)) return false;
      skip_ws();
      if (!consume(':')) return false;
      skip_ws();
      Kind kind;
      bool integer;
      if (!value(depth, kind, integer)) return false;
      skip_ws();
      if (consume('}')) return true;
      if (!consume(',')) return false;
      skip_ws();
    }
  }

  bool array(size_t depth) {
    if (depth > kMaxJsonDepth || !consume('[')) return false;
    skip_ws();
    if (consume(']')) return true;
    for (;;) {
      Kind kind;
      bool integer;
      if (!value(depth, kind, integer)) return false;
      skip_ws();
      if (consume(']')) return true;
      if (!consume(',')) return false;
      skip_ws();
    }
  }

 private:
  bool hex4(uint32_t& cp) {
    if (end_ - p_ < 4) return false;
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      const int v = hex_value(p_[i]);
      if (v < 0) return false;
      cp = (cp << 4) | static_cast<uint32_t>(v);
    }
    p_ += 4;
    return true;
  }

  const char* p_;
  const char* end_;
};

enum class ScanResult { Ok, BadJson, TooManyMembers };

// Scans text as one object and lists its top-level members. Escaped member names
// (rare) are decoded into `names`, which is reserved to text.size() on first use: a
// decoded name is never longer than its JSON, so the keys' views stay valid.
ScanResult scan_top_level(std::string_view text, std::array<Member, kMaxMembers>& members,
                          std::string& names, size_t& count) {
  count = 0;
  Scanner s(text);
  s.skip_ws();
  if (!s.consume('{')) return ScanResult::BadJson;
  s.skip_ws();
  bool too_many = false;
  if (!s.consume('}')) {
    for (;;) {
      const char* key_begin = s.pos();
      bool escaped = false;
      if (!s.string(nullptr, escaped)) return ScanResult::BadJson;
      const char* key_end = s.pos();
      std::string_view key(key_begin + 1, static_cast<size_t>(key_end - key_begin - 2));
      if (escaped && count < kMaxMembers) {
        if (names.capacity() < text.size()) names.reserve(text.size());
        const size_t start = names.size();
        Scanner again(std::string_view(key_begin, static_cast<size_t>(key_end - key_begin)));
        (void)again.string(&names, escaped);
        key = std::string_view(names).substr(start);
      }
      s.skip_ws();
      if (!s.consume(':')) return ScanResult::BadJson;
      s.skip_ws();
      const char* value_begin = s.pos();
      Kind kind;
      bool integer;
      if (!s.value(1, kind, integer)) return ScanResult::BadJson;
      if (count < kMaxMembers) {
        Member& m = members[count];
        m.key_data = key.data();
        m.key_size = key.size();
        m.value_data = value_begin;
        m.value_size = static_cast<size_t>(s.pos() - value_begin);
        m.kind = kind;
        m.integer = integer;
        ++count;
      } else {
        too_many = true;
      }
      s.skip_ws();
      if (s.consume('}')) break;
      if (!s.consume(',')) return ScanResult::BadJson;
      s.skip_ws();
    }
  }
  s.skip_ws();
  if (!s.at_end()) return ScanResult::BadJson;
  return too_many ? ScanResult::TooManyMembers : ScanResult::Ok;
}

struct TypeName {
  std::string_view name;
  MessageType type;
};
constexpr TypeName kTypes[] = {
    {"join", MessageType::Join},           {"leave", MessageType::Leave},
    {"heartbeat", MessageType::Heartbeat}, {"offer", MessageType::Offer},
    {"answer", MessageType::Answer},       {"candidate", MessageType::Candidate},
    {"relay", MessageType::Relay},         {"announce", MessageType::Announce},
    {"broadcast", MessageType::Broadcast},
};

class Validator {
 public:
  Validator(const std::array<Member, kMaxMembers>& members, size_t count, MessageError& error)
      : members_(members), count_(count), error_(error) {}

  const Member* find(std::string_view key) const {
    for (size_t i = 0; i < count_; ++i) {
      if (members_[i].key() == key) return &members_[i];
    }
    return nullptr;
  }

  bool reject(const char* code, std::string message) {
    error_.code = code;
    error_.message = std::move(message);
    return false;
  }

  // A string member; decoded into out. max_length bounds the decoded size.
  bool string(std::string_view key, bool required, size_t max_length, std::string& out) {
    out.clear();
    const Member* m = find(key);
    if (!m) return !required || reject("bad_message", "missing \"" + std::string(key) + "\"");
    if (m->kind != Kind::String) {
      return reject("bad_message", "\"" + std::string(key) + "\" must be a string");
    }
    Scanner s(m->value());
    bool escaped;
    (void)s.string(&out, escaped);
    if (out.size() > max_length) {
      return reject("bad_message", "\"" + std::string(key) + "\" is too long");
    }
    return true;
  }

  bool is_string(std::string_view key) {
    const Member* m = find(key);
    if (!m) return reject("bad_message", "missing \"" + std::string(key) + "\"");
    if (m->kind != Kind::String) {
      return reject("bad_message", "\"" + std::string(key) + "\" must be a string");
    }
    return true;
  }

  bool id(std::string_view key, std::string& out) {
    if (!string(key, true, 1024, out)) return false;
    if (!is_valid_id(out)) {
      return reject("invalid_id",
                    "\"" + std::string(key) + "\" must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$");
    }
    return true;
  }

  bool object(std::string_view key, bool required, bool allow_null, size_t max_bytes,
              std::string_view& out, bool& present) {
    const Member* m = find(key);
    present = m != nullptr;
    if (!m) return !required || reject("bad_message", "missing \"" + std::string(key) + "\"");
    if (!(m->kind == Kind::Object || (allow_null && m->kind == Kind::Null))) {
      return reject("bad_message", "\"" + std::string(key) + "\" must be an object");
    }
    if (m->value().size() > max_bytes) {
      return reject("bad_message", "\"" + std::string(key) + "\" is too large");
    }
    out = m->value();
    return true;
  }

 private:
  const std::array<Member, kMaxMembers>& members_;
  size_t count_;
  MessageError& error_;
};

}  // namespace

const char* message_type_name(MessageType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) return t.name.data();
  }
  return "unknown";
}

bool is_json_object(std::string_view text) {
  std::array<Member, kMaxMembers> members;
  std::string names;
  size_t count;
  if (scan_top_level(text, members, names, count) == ScanResult::BadJson) return false;
  for (size_t i = 0; i < count; ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (members[i].key() == members[j].key()) return false;
    }
  }
  return true;
}

bool parse_client_message(std::string_view text, ClientMessage& out, MessageError& error) {
  error = MessageError{};
  std::array<Member, kMaxMembers> members;
  std::string names;
  size_t count = 0;
  switch (scan_top_level(text, members, names, count)) {
    case ScanResult::BadJson:
      error.code = "bad_json";
      error.message = "the message is not one valid JSON object";
      return false;
    case ScanResult::TooManyMembers:
      error.code = "bad_message";
      error.message = "too many members";
      return false;
    case ScanResult::Ok:
      break;
  }
  for (size_t i = 1; i < count; ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (members[i].key() == members[j].key()) {
        error.code = "bad_message";
        error.message = "duplicate member \"" + std::string(members[i].key()) + "\"";
        return false;
      }
    }
  }
  Validator v(members, count, error);

  out.ref = {};
  if (const Member* id = v.find("id")) {
    if ((id->kind != Kind::String && !(id->kind == Kind::Number && id->integer)) ||
        id->value().size() > 256) {
      return v.reject("bad_message", "\"id\" must be a string or an integer");
    }
    out.ref = id->value();
    error.ref = id->value();
  }
  const Member* type = v.find("type");
  if (!type || type->kind != Kind::String) {
    return v.reject("bad_message", "missing string member \"type\"");
  }
  if (v.find("from")) return v.reject("bad_message", "clients must not send \"from\"");
  std::string type_name;
  {
    Scanner s(type->value());
    bool escaped;
    (void)s.string(&type_name, escaped);
  }
  bool known = false;
  for (const auto& t : kTypes) {
    if (t.name == type_name) {
      out.type = t.type;
      known = true;
      break;
    }
  }
  if (!known) {
    if (type_name.size() > 64) type_name = type_name.substr(0, 64) + "...";
    return v.reject("unknown_type", "unknown message type \"" + type_name + "\"");
  }

  out.room.clear();
  out.peer.clear();
  out.to.clear();
  out.token.clear();
  out.resume.clear();
  out.metadata = {};
  out.has_metadata = false;
  std::string session;
  std::string_view raw;
  bool present = false;
  switch (out.type) {
    case MessageType::Join:
      return v.id("room", out.room) && v.id("peer", out.peer) &&
             v.object("metadata", false, false, kMaxMetadataBytes, out.metadata,
                      out.has_metadata) &&
             v.string("token", false, 8192, out.token) &&
             v.string("resume", false, 256, out.resume);
    case MessageType::Leave:
    case MessageType::Heartbeat:
      return true;
    case MessageType::Offer:
    case MessageType::Answer:
      return v.id("to", out.to) && v.string("session", true, 64, session) &&
             (!session.empty() || v.reject("bad_message", "\"session\" is empty")) &&
             v.is_string("sdp");
    case MessageType::Candidate:
      return v.id("to", out.to) && v.string("session", true, 64, session) &&
             (!session.empty() || v.reject("bad_message", "\"session\" is empty")) &&
             v.object("candidate", true, true, SIZE_MAX, raw, present);
    case MessageType::Relay:
      return v.id("to", out.to) && v.object("data", true, false, SIZE_MAX, raw, present);
    case MessageType::Announce:
      out.has_metadata = true;
      return v.object("metadata", true, false, kMaxMetadataBytes, out.metadata, present);
    case MessageType::Broadcast:
      return v.object("data", true, false, SIZE_MAX, raw, present);
  }
  return true;
}

}  // namespace rtcmesh::hub
