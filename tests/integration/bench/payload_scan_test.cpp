// PayloadScanner (chat-bench's one-pass extraction of event and ack fields): exact results on the
// server's payloads, refusal of anything json::parse refuses, and agreement with a DOM built by
// json::parse on many random documents (duplicate keys, nesting, escapes included).
// Meant for tests/integration/bench/ (chat_unit_test(bench_payload_scan_test ... chat_bench_lib)).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <random>
#include <string>

#include "payload_scan.hpp"

using chat::bench::PayloadScanner;
using chat::bench::ScannedAck;
using chat::bench::ScannedEvent;
using chat::bench::ScannedField;

namespace {

TEST(BenchPayloadScan, NewMessage) {
  PayloadScanner s;
  ScannedEvent e;
  ASSERT_TRUE(s.scan_event(
      R"(["newMessage",{"_id":"6b0a13739d0a353c4365b68a","senderId":"abc","text":"123 4 xx","x":{"_id":"no","text":5}}])",
      e));
  EXPECT_EQ(e.args, 2u);
  EXPECT_EQ(e.name.value, "newMessage");
  EXPECT_TRUE(e.arg1_object);
  EXPECT_EQ(e.id.value, "6b0a13739d0a353c4365b68a");
  EXPECT_EQ(e.sender_id.value, "abc");
  EXPECT_EQ(e.text.value, "123 4 xx");
}

TEST(BenchPayloadScan, TypesEscapesAndShapes) {
  PayloadScanner s;
  ScannedEvent e;
  ASSERT_TRUE(s.scan_event(R"( ["newMessage", {"_id": 5, "senderId": "a\u0062\"c", "text": ["1"]}, 3] )", e));
  EXPECT_EQ(e.args, 3u);
  EXPECT_EQ(e.id.kind, ScannedField::Kind::other);
  EXPECT_EQ(e.sender_id.value, "ab\"c");
  EXPECT_EQ(e.text.kind, ScannedField::Kind::other);
  ASSERT_TRUE(s.scan_event(R"(["x"])", e));
  EXPECT_EQ(e.args, 1u);
  EXPECT_EQ(e.id.kind, ScannedField::Kind::absent);
  ASSERT_TRUE(s.scan_event("[]", e));
  EXPECT_EQ(e.args, 0u);
  EXPECT_FALSE(e.name.is_string());
  ASSERT_TRUE(s.scan_event(R"([1,[{"_id":"a"}],{"_id":"b"}])", e));
  EXPECT_EQ(e.name.kind, ScannedField::Kind::other);
  EXPECT_FALSE(e.arg1_object);
  EXPECT_FALSE(e.id.is_string());
}

TEST(BenchPayloadScan, RefusesWhatParseRefuses) {
  PayloadScanner s;
  ScannedEvent e;
  for (const char* bad : {R"({"a":1})", R"("x")", R"(["x",)", R"(["x"] ["y"])", R"(["x"]x)", "[\"\xff\"]", "", "[1,]"})
    EXPECT_FALSE(s.scan_event(bad, e)) << bad;
  EXPECT_FALSE(s.scan_event(std::string(70, '[') + std::string(70, ']'), e));  // deeper than 64
  EXPECT_TRUE(s.scan_event(std::string(60, '[') + std::string(60, ']'), e));
  // usable again after a failure
  ASSERT_TRUE(s.scan_event(R"(["newMessage",{"text":"é\n"}])", e));
  EXPECT_EQ(e.text.value, "é\n");
}

TEST(BenchPayloadScan, Ack) {
  PayloadScanner s;
  ScannedAck a;
  ASSERT_TRUE(s.scan_ack(
      R"([{"status":"ok","message":{"_id":"6b0a13739d0a353c4365b68a","senderId":"z","n":{"_id":"q"}}}])", a));
  EXPECT_TRUE(a.arg0_object);
  EXPECT_EQ(a.status.value, "ok");
  EXPECT_TRUE(a.message_object);
  EXPECT_EQ(a.message_id.value, "6b0a13739d0a353c4365b68a");
  EXPECT_FALSE(a.code.is_string());
  ASSERT_TRUE(s.scan_ack(R"([{"status":"error","error":"x","code":"validation"}])", a));
  EXPECT_EQ(a.code.value, "validation");
  EXPECT_FALSE(a.message_object);
  ASSERT_TRUE(s.scan_ack(R"([{"status":"ok","message":{"_id":"a"},"message":7}])", a));  // the last one counts
  EXPECT_FALSE(a.message_object);
  EXPECT_FALSE(a.message_id.is_string());
  ASSERT_TRUE(s.scan_ack(R"(["ok",{"status":"ok"}])", a));
  EXPECT_FALSE(a.arg0_object);
  EXPECT_FALSE(a.status.is_string());
  EXPECT_FALSE(s.scan_ack(R"([{"status":"ok"])", a));
}

TEST(BenchPayloadScan, LongEscapedString) {
  PayloadScanner s;
  ScannedEvent e;
  std::string doc = R"(["n",{"text":")", expect;
  for (int i = 0; i < 5000; ++i) {
    doc += R"(ab\u00e9\n)";
    expect += "ab\xc3\xa9\n";
  }
  doc += R"("}])";
  ASSERT_TRUE(s.scan_event(doc, e));
  EXPECT_EQ(e.text.value, expect);
}

std::string random_value(std::mt19937& rng, int depth) {
  static const char* keys[] = {R"("_id")", R"("status")", R"("message")", R"("text")",
                               R"("senderId")", R"("code")", R"("x")", R"("_i\u0064")"};
  switch (rng() % (depth > 4 ? 5 : 8)) {
    case 0: return R"("ok")";
    case 1: return "12";
    case 2: return R"("6b0a13739d0a353c4365b68a")";
    case 3: return "null";
    case 4: return R"("a\"b")";
    case 5:
    case 6: {
      std::string o = "{";
      for (unsigned i = 0, n = rng() % 4; i < n; ++i)
        o += (i ? "," : "") + std::string(keys[rng() % 8]) + ":" + random_value(rng, depth + 1);
      return o + "}";
    }
    default: {
      std::string a = "[";
      for (unsigned i = 0, n = rng() % 4; i < n; ++i) a += (i ? "," : "") + random_value(rng, depth + 1);
      return a + "]";
    }
  }
}

/// The member `key` of `o` as the scanner should report it.
void expect_field(const boost::json::object* o, const char* key, const ScannedField& f, const std::string& doc) {
  const boost::json::value* v = o ? o->if_contains(key) : nullptr;
  ASSERT_EQ(v && v->is_string(), f.is_string()) << key << " in " << doc;
  if (v && v->is_string()) {
    EXPECT_EQ(std::string(v->get_string()), f.value) << doc;
  }
}

TEST(BenchPayloadScan, AgreesWithJsonParse) {
  PayloadScanner s;
  ScannedEvent e;
  ScannedAck a;
  std::mt19937 rng(7);
  static const char* pieces[] = {"[", "]", "{", "}", ",", ":", R"("_id")", R"("ok")", "1", "null", " ", R"("a\"b")"};
  for (int n = 0; n < 50000; ++n) {
    std::string doc;
    if (n % 2) {
      for (unsigned i = 0, len = 1 + rng() % 12; i < len; ++i) doc += pieces[rng() % 12];
    } else {
      doc = "[";
      for (unsigned i = 0, cnt = rng() % 4; i < cnt; ++i) doc += (i ? "," : "") + random_value(rng, 1);
      doc += "]";
    }
    boost::system::error_code ec;
    boost::json::parse_options po;
    po.max_depth = 64;
    const boost::json::value v = boost::json::parse(doc, ec, {}, po);
    const bool valid = !ec && v.is_array();
    ASSERT_EQ(valid, s.scan_ack(doc, a)) << doc;
    ASSERT_EQ(valid, s.scan_event(doc, e)) << doc;
    if (!valid) continue;
    const auto& args = v.get_array();
    const boost::json::object* body = !args.empty() ? args[0].if_object() : nullptr;
    ASSERT_EQ(body != nullptr, a.arg0_object) << doc;
    expect_field(body, "status", a.status, doc);
    expect_field(body, "code", a.code, doc);
    const boost::json::value* m = body ? body->if_contains("message") : nullptr;
    ASSERT_EQ(m && m->is_object(), a.message_object) << doc;
    expect_field(m ? m->if_object() : nullptr, "_id", a.message_id, doc);
    ASSERT_EQ(args.size(), e.args) << doc;
    ASSERT_EQ(!args.empty() && args[0].is_string(), e.name.is_string()) << doc;
    if (!args.empty() && args[0].is_string()) {
      EXPECT_EQ(std::string(args[0].get_string()), e.name.value);
    }
    const boost::json::object* m1 = args.size() > 1 ? args[1].if_object() : nullptr;
    ASSERT_EQ(m1 != nullptr, e.arg1_object) << doc;
    expect_field(m1, "_id", e.id, doc);
    expect_field(m1, "senderId", e.sender_id, doc);
    expect_field(m1, "text", e.text, doc);
  }
}

}  // namespace
