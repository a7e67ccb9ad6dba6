#include "store/message_journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <random>
#include <system_error>
#include <thread>

#include "core/log.hpp"

namespace chat::store {
namespace {

constexpr char kMagic[8] = {'c', 'h', 'a', 't', 'm', 'l', 'g', '1'};
constexpr std::size_t kHeaderBytes = 32;  // magic, epoch, base seq, CRC-32, padding
constexpr std::size_t kRecordHead = 16;   // length, CRC-32, seq
constexpr std::size_t kMinSegment = 1u << 20;

void put_u32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_u64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

/// CRC-32 (ISO-HDLC: the polynomial and bit order of zlib, gzip and PNG; what journals written
/// by earlier versions carry). zlib's is ~4x faster than a byte table (Boost's crc_32_type, used
/// before: 2.4 % of chatd's CPU at 30,000 msg/s); records are a few hundred bytes.
std::uint32_t crc32(std::string_view a, std::string_view b = {}) {
  auto add = [](uLong crc, std::string_view s) {  // (zlib: a null buffer means "start over")
    return s.empty() ? crc : ::crc32_z(crc, reinterpret_cast<const Bytef*>(s.data()), s.size());
  };
  return static_cast<std::uint32_t>(add(add(::crc32_z(0, nullptr, 0), a), b));
}

/// The CRC of a record: its segment's epoch, then its seq and payload (contiguous in the file).
std::uint32_t record_crc(std::uint64_t epoch, std::string_view seq_and_payload) {
  char e[8];
  put_u64(e, epoch);
  return crc32(std::string_view(e, 8), seq_and_payload);
}

std::string header_bytes(std::uint64_t epoch, std::uint64_t base_seq) {
  std::string h(kHeaderBytes, '\0');
  std::memcpy(h.data(), kMagic, 8);
  put_u64(h.data() + 8, epoch);
  put_u64(h.data() + 16, base_seq);
  put_u32(h.data() + 24, crc32(std::string_view(h.data(), 24)));
  return h;
}

/// A record's text fields, in their order in the payload (then created_at, updated_at).
template <class M>
auto text_fields(M& m) {
  return std::array{&m.id, &m.conversation_id, &m.sender_id, &m.receiver_id, &m.text,
                    &m.image, &m.client_msg_id};
}

void append_field(std::string& out, std::string_view s) {
  char n[4];
  put_u32(n, static_cast<std::uint32_t>(s.size()));
  out.append(n, 4);
  out.append(s);
}

/// Decodes a record's payload; false when it is malformed.
bool decode(std::string_view p, Message& m) {
  for (std::string* f : text_fields(m)) {
    if (p.size() < 4) return false;
    const std::uint32_t n = get_u32(p.data());
    p.remove_prefix(4);
    if (p.size() < n) return false;
    f->assign(p.data(), n);
    p.remove_prefix(n);
  }
  if (p.size() != 16) return false;
  m.created_at = static_cast<std::int64_t>(get_u64(p.data()));
  m.updated_at = static_cast<std::int64_t>(get_u64(p.data() + 8));
  return true;
}

error io_error(const std::string& what, const std::string& path, int err) {
  return error{errc::unavailable,
               "message journal: " + what + " '" + path + "': " + std::generic_category().message(err)};
}

/// Writes all of `iov` at `offset` (pwritev may write less than asked).
bool write_all(int fd, std::vector<iovec> iov, off_t offset) {
  std::size_t first = 0;
  while (first < iov.size()) {
    const ssize_t n = ::pwritev(fd, iov.data() + first, static_cast<int>(iov.size() - first), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    offset += n;
    auto left = static_cast<std::size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

bool sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

struct MessageJournal::Impl {
  struct Segment {
    std::size_t slot = 0;
    int fd = -1;
    std::size_t capacity = 0;    // the file's size
    std::uint64_t epoch = 0;
    std::uint64_t last_seq = 0;  // the greatest seq written to it
    std::size_t end = kHeaderBytes;
    bool header_written = false;
    bool sealed = false;         // recovered, or a write failed: never written again
  };
  struct Pending {
    std::uint64_t seq;
    std::size_t offset;  // in `batch`
    std::size_t size;
  };

  Options opts;
  std::string lock_path;
  int lock_fd = -1;
  std::deque<Segment> in_use;  // oldest first; the back one takes the writes unless sealed
  std::vector<Segment> spare;  // cleared, kept for reuse
  std::string batch;
  std::vector<Pending> pending;
  std::mt19937_64 rng{std::random_device{}()};

  ~Impl() {
    for (auto& s : in_use) ::close(s.fd);
    for (auto& s : spare) ::close(s.fd);
    if (lock_fd >= 0) ::close(lock_fd);  // releases the flock
  }

  std::string dir() const {
    auto p = std::filesystem::path(opts.base_path).parent_path();
    return p.empty() ? std::string(".") : p.string();
  }

  std::size_t max_record() const { return opts.segment_bytes - kHeaderBytes; }

  /// A segment ready for writes: a spare one, else a new file.
  result<Segment> fresh_segment(std::uint64_t base_seq) {
    Segment s;
    if (!spare.empty()) {
      s = spare.back();
      spare.pop_back();
    } else {
      std::size_t slot = 0;
      auto taken = [&](std::size_t n) {
        auto used = [n](const Segment& x) { return x.slot == n; };
        return std::any_of(in_use.begin(), in_use.end(), used) ||
               std::any_of(spare.begin(), spare.end(), used);
      };
      while (taken(slot)) ++slot;
      s.slot = slot;
      const std::string path = segment_path(opts.base_path, slot);
      s.fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (s.fd < 0) return io_error("cannot create", path, errno);
      // Allocated up front: writes then rarely change the file's metadata. A file system
      // without fallocate gets a sparse file (reads of its holes are zeros: no valid record).
      int rc = ::fallocate(s.fd, 0, 0, static_cast<off_t>(opts.segment_bytes));
      if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
        rc = ::ftruncate(s.fd, static_cast<off_t>(opts.segment_bytes));
      if (rc != 0 || !sync_dir(dir())) {
        const int err = errno;
        ::close(s.fd);
        ::unlink(path.c_str());
        return io_error("cannot allocate", path, err);
      }
      s.capacity = opts.segment_bytes;
    }
    s.epoch = rng();
    s.last_seq = base_seq;
    s.end = kHeaderBytes;
    s.header_written = false;
    s.sealed = false;
    return s;
  }

  /// Clears a segment's header (no sync) and keeps it for reuse, or deletes it.
  void retire(Segment s) {
    static const char zeros[kHeaderBytes] = {};
    const bool cleared = ::pwrite(s.fd, zeros, kHeaderBytes, 0) == static_cast<ssize_t>(kHeaderBytes);
    if (cleared && spare.size() < opts.max_free_segments && s.capacity == opts.segment_bytes) {
      spare.push_back(s);
      return;
    }
    ::close(s.fd);
    const std::string path = segment_path(opts.base_path, s.slot);
    if (::unlink(path.c_str()) != 0)
      spdlog::warn("message journal: cannot delete '{}': {}", path, std::strerror(errno));
  }

  /// Reads a segment's valid records into `out`; false when its header is not valid.
  result<bool> read_segment(Segment& s, std::vector<JournalRecord>& out) {
    const std::string path = segment_path(opts.base_path, s.slot);
    std::string data(s.capacity, '\0');
    std::size_t got = 0;
    while (got < data.size()) {
      const ssize_t n = ::pread(s.fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return io_error("cannot read", path, errno);
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    data.resize(got);
    if (data.size() < kHeaderBytes || std::memcmp(data.data(), kMagic, 8) != 0 ||
        get_u32(data.data() + 24) != crc32(std::string_view(data.data(), 24)))
      return false;
    s.epoch = get_u64(data.data() + 8);
    s.last_seq = get_u64(data.data() + 16);
    std::size_t at = kHeaderBytes;
    std::uint64_t prev = 0;
    bool first = true;
    while (at + kRecordHead <= data.size()) {
      const std::uint32_t len = get_u32(data.data() + at);
      if (len == 0 || len > data.size() - at - kRecordHead) break;
      const std::string_view body(data.data() + at + 8, 8 + len);  // seq + payload
      if (get_u32(data.data() + at + 4) != record_crc(s.epoch, body)) break;
      const std::uint64_t seq = get_u64(body.data());
      if (!first && seq <= prev) break;
      JournalRecord r;
      r.seq = seq;
      if (!decode(body.substr(8), r.m))
        return error{errc::internal, "message journal: '" + path + "': a record with a valid " +
                                         "checksum does not decode (seq " + std::to_string(seq) + ")"};
      out.push_back(std::move(r));
      prev = seq;
      first = false;
      s.last_seq = seq;
      at += kRecordHead + len;
    }
    s.end = at;
    s.header_written = true;
    return true;
  }
};

MessageJournal::MessageJournal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MessageJournal::~MessageJournal() = default;

std::string MessageJournal::segment_path(std::string_view base_path, std::size_t n) {
  return std::string(base_path) + "." + std::to_string(n);
}

std::string MessageJournal::lock_path(std::string_view base_path) {
  return std::string(base_path) + ".lock";
}

result<std::unique_ptr<MessageJournal>> MessageJournal::open(const Options& options,
                                                             std::vector<JournalRecord>& recovered) {
  namespace fs = std::filesystem;
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  impl->opts.segment_bytes = std::max(impl->opts.segment_bytes, kMinSegment);
  impl->lock_path = lock_path(options.base_path);
  std::error_code made;
  fs::create_directories(impl->dir(), made);
  if (made) return io_error("cannot create", impl->dir(), made.value());
  impl->lock_fd = ::open(impl->lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (impl->lock_fd < 0) return io_error("cannot open", impl->lock_path, errno);
  // Polled rather than a blocking flock, which could wait for good.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.lock_wait_ms);
  while (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return io_error("cannot lock", impl->lock_path, errno);
    if (std::chrono::steady_clock::now() >= give_up)
      return error{errc::unavailable, "message journal '" + options.base_path +
                                          "' is in use (is another process using the database?)"};
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  // Every "<base>.<n>": read when its header is valid, else kept as a spare (or deleted).
  const fs::path base(options.base_path);
  const std::string prefix = base.filename().string() + ".";
  std::vector<Impl::Segment> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(impl->dir(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 6 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    Impl::Segment s;
    s.slot = std::stoul(digits);
    const std::string path = segment_path(options.base_path, s.slot);
    s.fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (s.fd < 0) return io_error("cannot open", path, errno);
    struct stat st {};
    if (::fstat(s.fd, &st) != 0) {
      ::close(s.fd);
      return io_error("cannot stat", path, errno);
    }
    s.capacity = static_cast<std::size_t>(st.st_size);
    found.push_back(s);
  }
  if (ec) return io_error("cannot list", impl->dir(), ec.value());
  std::vector<JournalRecord> records;
  for (auto& s : found) {
    auto valid = impl->read_segment(s, records);
    if (!valid.ok()) {
      for (auto& f : found) ::close(f.fd);
      return valid.err();
    }
    if (*valid) {
      s.sealed = true;  // a new run writes to fresh segments (new epoch) only
      impl->in_use.push_back(s);
    } else {
      impl->retire(s);
    }
  }
  std::sort(impl->in_use.begin(), impl->in_use.end(),
            [](const Impl::Segment& a, const Impl::Segment& b) { return a.last_seq < b.last_seq; });
  std::stable_sort(records.begin(), records.end(),
                   [](const JournalRecord& a, const JournalRecord& b) { return a.seq < b.seq; });
  records.erase(std::unique(records.begin(), records.end(),
                            [](const JournalRecord& a, const JournalRecord& b) { return a.seq == b.seq; }),
                records.end());
  recovered = std::move(records);
  return std::unique_ptr<MessageJournal>(new MessageJournal(std::move(impl)));
}

result<void> MessageJournal::add(std::uint64_t seq, const Message& m) {
  Impl& i = *impl_;
  const std::size_t at = i.batch.size();
  i.batch.resize(at + kRecordHead);
  for (const std::string* f : text_fields(m)) append_field(i.batch, *f);
  char t[16];
  put_u64(t, static_cast<std::uint64_t>(m.created_at));
  put_u64(t + 8, static_cast<std::uint64_t>(m.updated_at));
  i.batch.append(t, 16);
  const std::size_t size = i.batch.size() - at;
  if (size > i.max_record()) {
    i.batch.resize(at);
    return error{errc::invalid_argument, "message too large for the journal (" +
                                             std::to_string(size) + " bytes)"};
  }
  put_u32(i.batch.data() + at, static_cast<std::uint32_t>(size - kRecordHead));
  put_u64(i.batch.data() + at + 8, seq);  // the CRC (at + 4) is the segment's: see commit()
  i.pending.push_back({seq, at, size});
  return {};
}

result<void> MessageJournal::commit() {
  Impl& i = *impl_;
  if (i.pending.empty()) return {};
  std::vector<Impl::Segment*> touched;
  auto fail = [&](error e) -> result<void> {
    for (Impl::Segment* s : touched) s->sealed = true;
    discard();
    return e;
  };
  std::size_t next = 0;
  while (next < i.pending.size()) {
    if (i.in_use.empty() || i.in_use.back().sealed ||
        i.in_use.back().end + i.pending[next].size > i.in_use.back().capacity) {
      if (!i.in_use.empty() && !i.in_use.back().sealed && i.in_use.back().header_written)
        i.in_use.back().sealed = true;  // full
      auto s = i.fresh_segment(i.pending[next].seq);
      if (!s.ok()) return fail(s.err());
      i.in_use.push_back(std::move(s).value());
    }
    Impl::Segment& s = i.in_use.back();
    // The records that fit, their CRCs under this segment's epoch.
    std::size_t last = next, bytes = 0;
    while (last < i.pending.size() && s.end + bytes + i.pending[last].size <= s.capacity) {
      const Impl::Pending& p = i.pending[last];
      char* rec = i.batch.data() + p.offset;
      put_u32(rec + 4, record_crc(s.epoch, std::string_view(rec + 8, p.size - 8)));
      bytes += p.size;
      ++last;
    }
    if (last == next)  // cannot happen: add() bounds a record by an empty segment's room
      return fail(error{errc::internal, "message journal: a record larger than its segment"});
    std::string header;
    std::vector<iovec> iov;
    if (!s.header_written) {
      header = header_bytes(s.epoch, i.pending[next].seq);
      iov.push_back({header.data(), header.size()});
    }
    iov.push_back({i.batch.data() + i.pending[next].offset, bytes});
    const off_t offset = s.header_written ? static_cast<off_t>(s.end) : 0;
    if (std::find(touched.begin(), touched.end(), &s) == touched.end()) touched.push_back(&s);
    s.last_seq = std::max(s.last_seq, i.pending[last - 1].seq);
    if (!write_all(s.fd, std::move(iov), offset))
      return fail(io_error("cannot write", segment_path(i.opts.base_path, s.slot), errno));
    s.header_written = true;
    s.end += bytes;
    next = last;
  }
  for (Impl::Segment* s : touched) {
    if (::fdatasync(s->fd) != 0)
      return fail(io_error("cannot sync", segment_path(i.opts.base_path, s->slot), errno));
  }
  discard();
  return {};
}

void MessageJournal::discard() {
  impl_->batch.clear();
  impl_->pending.clear();
}

void MessageJournal::release(std::uint64_t seq) {
  Impl& i = *impl_;
  // Every segment but the one taking writes, oldest first, while all its records are released.
  while (!i.in_use.empty()) {
    Impl::Segment& s = i.in_use.front();
    const bool writing = &s == &i.in_use.back() && !s.sealed;
    if (writing || s.last_seq > seq) break;
    Impl::Segment done = s;
    i.in_use.pop_front();
    i.retire(done);
  }
}

void MessageJournal::clear() {
  Impl& i = *impl_;
  while (!i.in_use.empty()) {
    Impl::Segment done = i.in_use.front();
    i.in_use.pop_front();
    i.retire(done);
  }
}

std::size_t MessageJournal::batched() const { return impl_->pending.size(); }

std::size_t MessageJournal::segment_files() const { return impl_->in_use.size() + impl_->spare.size(); }

}  // namespace chat::store
