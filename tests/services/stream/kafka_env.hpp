#pragma once
// Test helpers for the Kafka service tests: one broker per test process (scripts/services/
// kafka.sh on free ports in a temp dir, stopped with the process), and plain librdkafka
// producer/consumer helpers that do not go through the code under test.
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "services/ports.hpp"
#include "store/store.hpp"

namespace chat::test {

inline std::string scripts_dir() {
  const char* s = std::getenv("CHAT_SCRIPTS");
  return s && *s ? s : CHAT_DEFAULT_SCRIPTS;
}

class KafkaBroker {
 public:
  static constexpr const char* kUser = "chat";
  static constexpr const char* kPassword = "chat-secret";

  /// Starts a broker (PLAINTEXT + SASL_PLAINTEXT/PLAIN). Throws when it does not start.
  void start() {
    dir_ = std::filesystem::temp_directory_path() /
           ("chat-kafka-test-" + std::to_string(::getpid()) + "-" + std::to_string(::time(nullptr)));
    std::filesystem::create_directories(dir_);
    std::string cmd;
    for (int attempt = 0; attempt < 3; ++attempt) {  // a port lost to a parallel test: new ones
      if (attempt > 0) {  // the storage is formatted for the ports: a fresh directory
        stop();
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
      }
      port_ = static_cast<std::uint16_t>(free_port(1));  // the controller listens on port + 1
      sasl_port_ = static_cast<std::uint16_t>(free_port());
      cmd = scripts_dir() + "/services/kafka.sh start --dir " + dir_.string() + " --port " +
            std::to_string(port_) + " --sasl-port " + std::to_string(sasl_port_) + " --sasl-user " +
            kUser + " --sasl-password " + kPassword + " --partitions 3 --no-verify --watch-pid " +
            std::to_string(::getpid());
      if (std::system(cmd.c_str()) == 0) return;
    }
    throw std::runtime_error("kafka did not start: " + cmd);
  }
  void stop() {
    if (dir_.empty()) return;
    std::string cmd = scripts_dir() + "/services/kafka.sh stop --dir " + dir_.string();
    (void)std::system(cmd.c_str());
  }
  void remove() {
    stop();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string bootstrap() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string sasl_bootstrap() const { return "127.0.0.1:" + std::to_string(sasl_port_); }

 private:
  std::filesystem::path dir_;
  std::uint16_t port_ = 0, sasl_port_ = 0;
};

struct RawRecord {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key, value;
  std::map<std::string, std::string> headers;
};

inline rd_kafka_t* raw_client(rd_kafka_type_t type,
                              const std::vector<std::pair<std::string, std::string>>& props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (auto& [k, v] : props)
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      throw std::runtime_error(err);
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char*, const char*) {});
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) throw std::runtime_error(err);
  return rk;
}

/// Produces raw records (key, value) to `topic` and waits for the acks; false on any failure.
inline bool produce_raw(const std::string& bootstrap, const std::string& topic,
                        const std::vector<std::pair<std::string, std::string>>& records) {
  rd_kafka_t* rk = raw_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap}, {"acks", "all"}});
  static int failures;
  failures = 0;
  for (auto& [k, v] : records)
    if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()),
                          RD_KAFKA_V_KEY(const_cast<char*>(k.data()), k.size()),
                          RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
      ++failures;
  bool ok = rd_kafka_flush(rk, 15000) == RD_KAFKA_RESP_ERR_NO_ERROR && failures == 0;
  rd_kafka_destroy(rk);
  return ok;
}

/// Reads `topic` from the beginning (a fresh group) until `count` records arrived or `timeout`
/// passed, then keeps reading for `settle` to catch extra records.
inline std::vector<RawRecord> read_topic(
    const std::string& bootstrap, const std::string& topic, std::size_t count,
    std::chrono::milliseconds timeout = std::chrono::seconds(30),
    std::chrono::milliseconds settle = std::chrono::milliseconds(500),
    const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  static int n = 0;
  std::vector<std::pair<std::string, std::string>> props{
      {"bootstrap.servers", bootstrap},
      {"group.id", "reader-" + std::to_string(::getpid()) + "-" + std::to_string(++n)},
      {"auto.offset.reset", "earliest"},
      {"enable.auto.commit", "false"}};
  props.insert(props.end(), extra.begin(), extra.end());
  rd_kafka_t* rk = raw_client(RD_KAFKA_CONSUMER, props);
  rd_kafka_poll_set_consumer(rk);
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<RawRecord> out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::steady_clock::time_point settle_until{};
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (out.size() >= count) {
      if (settle_until == std::chrono::steady_clock::time_point{}) settle_until = now + settle;
      if (now >= settle_until) break;
    } else if (now >= deadline) {
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (!m->err) {
      RawRecord r;
      r.topic = rd_kafka_topic_name(m->rkt);
      r.partition = m->partition;
      r.offset = m->offset;
      if (m->key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) r.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* h = nullptr;
      if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* val;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &size) == 0; ++i)
          r.headers[name] = val ? std::string(static_cast<const char*>(val), size) : "";
      }
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

/// The committed offsets of `group` for partitions 0..partitions-1 of `topic` (-1: none).
inline std::map<int, std::int64_t> committed_offsets(const std::string& bootstrap,
                                                     const std::string& group,
                                                     const std::string& topic, int partitions) {
  rd_kafka_t* rk = raw_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap}, {"group.id", group}});
  auto* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  std::map<int, std::int64_t> out;
  if (rd_kafka_committed(rk, list, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
    for (int i = 0; i < list->cnt; ++i) out[list->elems[i].partition] = list->elems[i].offset;
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return out;
}

template <class F>
bool wait_for(F pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

/// The broker of a test executable: started once before its tests and removed after them by
/// KafkaEnvironment (register it: ::testing::AddGlobalTestEnvironment(new KafkaEnvironment)).
inline KafkaBroker* broker = nullptr;

class KafkaEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    broker = new KafkaBroker();
    broker->start();
  }
  void TearDown() override {
    broker->remove();
    delete broker;
    broker = nullptr;
  }
};

/// A well-formed message `seq` of conversation `conv` (ids unique per (conv, seq)).
inline store::Message message(int conv, int seq) {
  store::Message m;
  char id[25];
  std::snprintf(id, sizeof id, "%08x%016x", 0x65000000 + seq, conv);
  m.id = id;
  m.sender_id = "65a1b2c3d4e5f60718293a01";
  m.receiver_id = "65a1b2c3d4e5f60718293a02";
  m.conversation_id = "d:conv-" + std::to_string(conv);
  m.text = "m" + std::to_string(seq);
  m.created_at = m.updated_at = 1700000000000 + seq;
  return m;
}

}  // namespace chat::test
