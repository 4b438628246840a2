#include "witness/format.hpp"

#include <chrono>
#include <cstring>
#include <ctime>

#include "base/crc32c.hpp"
#include "base/json_string.hpp"
#include "base/utf8.hpp"
#include "identity/identity.hpp"
#include "witness/canonical_json.hpp"

namespace rtcmesh::witness {

namespace {
void put_u32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
               static_cast<char>(v >> 24)};
  out.append(b, 4);
}
uint32_t get_u32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}
}  // namespace

void append_frame(std::string_view payload, std::string& out) {
  put_u32(out, static_cast<uint32_t>(payload.size()));
  put_u32(out, base::crc32c(payload.data(), payload.size()));
  out.append(payload);
}

FrameReader::FrameReader(std::string_view file) : file_(file) {
  magic_ok_ = file.size() >= kMagic.size() && file.substr(0, kMagic.size()) == kMagic;
  pos_ = magic_ok_ ? kMagic.size() : file.size();
}

Frame FrameReader::next() {
  Frame f;
  f.offset = pos_;
  const size_t left = file_.size() - pos_;
  if (left == 0) return f;
  if (left < kFrameHeader) {
    f.status = Frame::Status::Torn;
    f.problem = "the file ends inside a frame header (" + std::to_string(left) + " bytes)";
    return f;
  }
  const uint32_t len = get_u32(file_.data() + pos_);
  const uint32_t crc = get_u32(file_.data() + pos_ + 4);
  if (len == 0 || len > kMaxRecord) {
    // Zero/garbage lengths followed by nothing but this frame: a torn append.
    f.status = left <= kFrameHeader + kMaxRecord && left - kFrameHeader < len
                   ? Frame::Status::Torn
                   : Frame::Status::Corrupt;
    f.problem = "impossible frame length " + std::to_string(len);
    return f;
  }
  if (len > left - kFrameHeader) {
    f.status = Frame::Status::Torn;
    f.problem = "the file ends inside a record (" + std::to_string(left - kFrameHeader) + " of " +
                std::to_string(len) + " bytes)";
    return f;
  }
  f.payload = file_.substr(pos_ + kFrameHeader, len);
  f.crc_ok = base::crc32c(f.payload.data(), f.payload.size()) == crc;
  pos_ += kFrameHeader + len;
  f.status = Frame::Status::Ok;
  return f;
}

namespace {
bool get_int(const nlohmann::json& j, const char* key, int64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return false;
  out = it->get<int64_t>();
  return true;
}
const std::string* get_str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}
}  // namespace

Result<Record> parse_record(std::string_view payload) {
  auto j = nlohmann::json::parse(payload.begin(), payload.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("not a JSON object");
  Record r;
  int64_t v = 0;
  if (!get_int(j, "v", v) || v != 1) return make_error("missing or unknown format version v");
  if (!get_int(j, "seq", r.seq) || r.seq < 0) return make_error("missing seq");
  if (!get_int(j, "ts_us", r.ts_us) || !get_int(j, "mono_us", r.mono_us)) {
    return make_error("missing ts_us / mono_us");
  }
  const std::string* prev = get_str(j, "prev");
  if (!prev || !crypto::from_hex_into(*prev, r.prev.data(), r.prev.size())) {
    return make_error("missing or malformed prev");
  }
  const std::string* type = get_str(j, "event_type");
  const std::string* agent = get_str(j, "agent");
  if (!type || !agent) return make_error("missing event_type / agent");
  r.event_type = *type;
  r.agent = *agent;
  if (auto it = j.find("data"); it != j.end()) r.data = std::move(*it);
  if (auto it = j.find("metadata"); it != j.end()) r.metadata = std::move(*it);
  return r;
}

Status build_record(const RecordInput& in, std::string& out) {
  static const nlohmann::json empty = nlohmann::json::object();
  const auto& data = in.data && !in.data->is_null() ? *in.data : empty;
  const auto& metadata = in.metadata && !in.metadata->is_null() ? *in.metadata : empty;
  if (!data.is_object() || !metadata.is_object())
    return make_error("data and metadata must be objects");
  if (!base::is_valid_utf8(in.event_type) || !base::is_valid_utf8(in.agent))
    return make_error("not UTF-8");
  if (in.seq > static_cast<uint64_t>(kMaxSafeInteger)) return make_error("seq too large");
  out += "{\"agent\":";
  base::append_json_string(out, in.agent);
  out += ",\"data\":";
  if (auto st = append_canonical(data, out); !st) return make_error("data: " + st.error().message);
  out += ",\"event_type\":";
  base::append_json_string(out, in.event_type);
  out += ",\"metadata\":";
  if (auto st = append_canonical(metadata, out); !st) {
    return make_error("metadata: " + st.error().message);
  }
  out += ",\"mono_us\":";
  out += std::to_string(in.mono_us);
  out += ",\"prev\":\"";
  out += crypto::to_hex(in.prev);
  out += "\",\"seq\":";
  out += std::to_string(in.seq);
  out += ",\"ts_us\":";
  out += std::to_string(in.ts_us);
  out += ",\"v\":1}";
  return {};
}

std::string Checkpoint::note() const {
  std::string s(kFormat);
  s += '\n';
  s += origin;
  s += '\n';
  s += std::to_string(size);
  s += '\n';
  s += crypto::to_hex(root);
  s += '\n';
  s += crypto::to_hex(head);
  s += '\n';
  return s;
}

bool Checkpoint::signature_ok() const {
  auto v = crypto::Ed25519Verifier::from_raw(key);
  return v.ok() && v->verify(note(), sig);
}

nlohmann::json Checkpoint::data_json() const {
  return {{"head", crypto::to_hex(head)},
          {"root", crypto::to_hex(root)},
          {"sig", crypto::to_hex(sig)},
          {"size", size}};
}

nlohmann::json Checkpoint::export_json() const {
  auto j = data_json();
  j["type"] = "rtcmesh-witness-checkpoint/v1";
  j["origin"] = origin;
  j["key"] = crypto::to_hex(key);
  return j;
}

static Result<Checkpoint> fill(const nlohmann::json& d, Checkpoint c) {
  if (!d.is_object()) return make_error("checkpoint is not an object");
  auto hex = [&](const char* k, uint8_t* out, size_t n) {
    auto it = d.find(k);
    return it != d.end() && it->is_string() &&
           crypto::from_hex_into(it->get_ref<const std::string&>(), out, n);
  };
  auto size = d.find("size");
  if (size == d.end() || !size->is_number_unsigned()) return make_error("checkpoint: bad size");
  c.size = size->get<uint64_t>();
  if (!hex("root", c.root.data(), 32) || !hex("head", c.head.data(), 32) ||
      !hex("sig", c.sig.data(), 64)) {
    return make_error("checkpoint: bad root, head or sig");
  }
  return c;
}

Result<Checkpoint> Checkpoint::from_data(const nlohmann::json& data, std::string_view origin,
                                         const crypto::PublicKeyBytes& key) {
  Checkpoint c;
  c.origin = origin;
  c.key = key;
  return fill(data, std::move(c));
}

Result<Checkpoint> Checkpoint::from_export(std::string_view text) {
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("checkpoint file is not JSON");
  if (j.value("type", "") != "rtcmesh-witness-checkpoint/v1") {
    return make_error("not an rtcmesh witness checkpoint (type)");
  }
  Checkpoint c;
  auto origin = j.find("origin");
  auto key = j.find("key");
  if (origin == j.end() || !origin->is_string() || key == j.end() || !key->is_string() ||
      !crypto::from_hex_into(key->get_ref<const std::string&>(), c.key.data(), 32)) {
    return make_error("checkpoint: bad origin or key");
  }
  c.origin = origin->get<std::string>();
  return fill(j, std::move(c));
}

Result<Checkpoint> parse_peer_checkpoint(std::string_view text) {
  auto c = Checkpoint::from_export(text);
  if (!c) return c;
  if (c->origin != identity::node_id_for(c->key)) {
    return make_error("checkpoint origin " + c->origin + " is not the node id of its key");
  }
  if (!c->signature_ok()) return make_error("checkpoint signature does not verify");
  return c;
}

int64_t wall_clock_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t monotonic_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

std::string salted_address_hash(std::string_view salt, std::string_view address) {
  crypto::Sha256 h;
  h.update(salt);
  h.update(address);
  auto d = h.finish();
  return "sha256:" + crypto::to_hex(d.data(), 8);
}

std::string random_salt() {
  uint8_t b[16];
  crypto::random_bytes(b, sizeof b);
  return crypto::to_hex(b, sizeof b);
}

}  // namespace rtcmesh::witness
