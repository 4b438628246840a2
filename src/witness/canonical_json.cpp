#include "witness/canonical_json.hpp"

#include <nlohmann/json.hpp>

namespace rtcmesh::witness {

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

void append_json_string(std::string_view s, std::string& out) {
  static const char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

namespace {

Status append(const nlohmann::json& v, std::string& out, int depth) {
  using T = nlohmann::json::value_t;
  if (depth > 32) return make_error("nested deeper than 32 levels");
  switch (v.type()) {
    case T::null: out += "null"; return {};
    case T::boolean: out += v.get<bool>() ? "true" : "false"; return {};
    case T::number_integer: {
      int64_t n = v.get<int64_t>();
      if (n > kMaxSafeInteger || n < -kMaxSafeInteger) {
        return make_error("integer beyond 2^53-1 (encode it as a string)");
      }
      out += std::to_string(n);
      return {};
    }
    case T::number_unsigned: {
      uint64_t n = v.get<uint64_t>();
      if (n > static_cast<uint64_t>(kMaxSafeInteger)) {
        return make_error("integer beyond 2^53-1 (encode it as a string)");
      }
      out += std::to_string(n);
      return {};
    }
    case T::number_float:
      return make_error("floating-point numbers are not allowed (use integers or decimal strings)");
    case T::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (!valid_utf8(s)) return make_error("string is not valid UTF-8");
      append_json_string(s, out);
      return {};
    }
    case T::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v) {
        if (!first) out.push_back(',');
        first = false;
        if (auto st = append(e, out, depth + 1); !st) return st;
      }
      out.push_back(']');
      return {};
    }
    case T::object: {
      out.push_back('{');
      bool first = true;
      // nlohmann's object_t is a std::map: iteration is bytewise key order.
      for (auto it = v.begin(); it != v.end(); ++it) {
        for (char c : it.key()) {
          if (c < 0x20 || c > 0x7e) return make_error("object key is not printable ASCII");
        }
        if (!first) out.push_back(',');
        first = false;
        append_json_string(it.key(), out);
        out.push_back(':');
        if (auto st = append(it.value(), out, depth + 1); !st) return st;
      }
      out.push_back('}');
      return {};
    }
    default:
      return make_error("binary and discarded values are not allowed");
  }
}

}  // namespace

Status append_canonical(const nlohmann::json& value, std::string& out) {
  return append(value, out, 0);
}

Result<std::string> canonical(const nlohmann::json& value) {
  std::string out;
  if (auto st = append(value, out, 0); !st) return st.error();
  return out;
}

}  // namespace rtcmesh::witness
