#include "witness/canonical_json.hpp"

#include <nlohmann/json.hpp>

namespace rtcmesh::witness {

namespace {

Status append(const nlohmann::json& v, std::string& out, int depth) {
  using T = nlohmann::json::value_t;
  if (depth > 32) return make_error("nested deeper than 32 levels");
  switch (v.type()) {
    case T::null:
      out += "null";
      return {};
    case T::boolean:
      out += v.get<bool>() ? "true" : "false";
      return {};
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
      if (!base::is_valid_utf8(s)) return make_error("string is not valid UTF-8");
      base::append_json_string(out, s);
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
        base::append_json_string(out, it.key());
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
