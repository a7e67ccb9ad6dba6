#include "bus/cluster_slots.hpp"

#include <array>
#include <charconv>

namespace chat::bus::cluster {

namespace {

// The CRC of each byte value, for a byte at a time instead of a bit at a time.
constexpr std::array<std::uint16_t, 256> kCrc16Table = [] {
  std::array<std::uint16_t, 256> t{};
  for (unsigned v = 0; v < 256; ++v) {
    auto crc = static_cast<std::uint16_t>(v << 8);
    for (int i = 0; i < 8; ++i)
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<std::uint16_t>(crc << 1);
    t[v] = crc;
  }
  return t;
}();

}  // namespace

std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (unsigned char c : data)
    crc = static_cast<std::uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ c) & 0xff]);
  return crc;
}

int key_slot(std::string_view key) {
  auto open = key.find('{');
  if (open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) & (kSlots - 1);
}

std::string Node::address() const { return host + ":" + std::to_string(port); }

namespace {

template <class T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<Node> parse_address(std::string_view text) {
  // Redis may append "@cport" (cluster bus port) in some outputs.
  if (auto at = text.find('@'); at != std::string_view::npos) text = text.substr(0, at);
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  auto port = parse_number<std::uint16_t>(text.substr(colon + 1));
  if (!port || *port == 0) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return Node{std::string(host), *port};
}

std::optional<Moved> parse_moved(std::string_view error) {
  constexpr std::string_view kPrefix = "MOVED ";
  if (!error.starts_with(kPrefix)) return std::nullopt;
  error.remove_prefix(kPrefix.size());
  auto space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto slot = parse_number<int>(error.substr(0, space));
  if (!slot || *slot < 0 || *slot >= kSlots) return std::nullopt;
  auto node = parse_address(error.substr(space + 1));
  if (!node) return std::nullopt;
  return Moved{*slot, std::move(*node)};
}

SlotMap SlotMap::single(Node node) {
  SlotMap m;
  m.nodes_.push_back(std::move(node));
  m.slot_node_.assign(kSlots, 0);
  return m;
}

result<SlotMap> SlotMap::from_cluster_slots(const resp::Reply& reply,
                                            std::string_view default_host) {
  if (!reply.is_array()) return {errc::internal, "CLUSTER SLOTS: not an array"};
  constexpr std::uint16_t kNone = 0xFFFF;
  SlotMap m;
  m.slot_node_.assign(kSlots, kNone);
  for (const auto& range : reply.elements) {
    if (!range.is_array() || range.elements.size() < 3) return {errc::internal, "bad slot range"};
    const auto& lo = range.elements[0];
    const auto& hi = range.elements[1];
    const auto& master = range.elements[2];
    if (!lo.is_integer() || !hi.is_integer() || lo.integer < 0 || hi.integer >= kSlots ||
        lo.integer > hi.integer)
      return {errc::internal, "bad slot bounds"};
    if (!master.is_array() || master.elements.size() < 2 || !master.elements[0].is_text() ||
        !master.elements[1].is_integer() || master.elements[1].integer <= 0 ||
        master.elements[1].integer > 65535)
      return {errc::internal, "bad slot master"};
    Node node{master.elements[0].str, static_cast<std::uint16_t>(master.elements[1].integer)};
    if (node.host.empty() || node.host == "?") node.host = std::string(default_host);
    auto idx = m.find(node);
    if (!idx) {
      if (m.nodes_.size() >= kNone) return {errc::internal, "too many nodes"};
      m.nodes_.push_back(std::move(node));
      idx = m.nodes_.size() - 1;
    }
    for (auto s = lo.integer; s <= hi.integer; ++s)
      m.slot_node_[static_cast<std::size_t>(s)] = static_cast<std::uint16_t>(*idx);
  }
  for (auto n : m.slot_node_)
    if (n == kNone) return {errc::unavailable, "not every slot is served"};
  return m;
}

std::optional<std::size_t> SlotMap::find(const Node& node) const {
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i] == node) return i;
  return std::nullopt;
}

bool SlotMap::apply(const Moved& moved) {
  auto idx = find(moved.node);
  if (!idx) return false;
  slot_node_[static_cast<std::size_t>(moved.slot)] = static_cast<std::uint16_t>(*idx);
  return true;
}

}  // namespace chat::bus::cluster
