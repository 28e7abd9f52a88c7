// Protocol parsing and serialisation against packages/contracts/src/runner.ts.
#include <gtest/gtest.h>

#include <limits>

#include <nlohmann/json.hpp>

#include "orchard/protocol.h"

namespace orchard::protocol {
namespace {

using nlohmann::json;

GenerateRequest parse_generate(const std::string& line) {
  ParseResult r = parse_request(line);
  EXPECT_TRUE(r.ok()) << line << " -> " << r.error.message;
  if (!r.ok()) return {};
  EXPECT_TRUE(std::holds_alternative<GenerateRequest>(*r.request));
  return std::get<GenerateRequest>(*r.request);
}

TEST(ProtocolParse, GenerateWithMessagesAndDefaults) {
  GenerateRequest g = parse_generate(
      R"({"type":"generate","id":"r1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]})");
  EXPECT_EQ(g.id, "r1");
  ASSERT_EQ(g.messages.size(), 2u);
  EXPECT_EQ(g.messages[0].role, Role::System);
  EXPECT_EQ(g.messages[1].role, Role::User);
  EXPECT_EQ(g.messages[1].content, "hi");
  EXPECT_FALSE(g.prompt.has_value());
  EXPECT_FALSE(g.session.has_value());
  EXPECT_EQ(g.max_new_tokens, 256);
  EXPECT_EQ(g.temperature, 0.0);
  EXPECT_EQ(g.top_p, 1.0);
  EXPECT_FALSE(g.seed.has_value());
}

TEST(ProtocolParse, GenerateWithEverySetting) {
  GenerateRequest g = parse_generate(
      R"({"type":"generate","id":"r2","session":"chat-7","prompt":"The capital of France is",)"
      R"("max_new_tokens":9,"temperature":0.7,"top_p":0.9,"seed":4294967295,"extra":"ignored"})");
  EXPECT_EQ(g.session, std::optional<std::string>("chat-7"));
  EXPECT_EQ(g.prompt, std::optional<std::string>("The capital of France is"));
  EXPECT_TRUE(g.messages.empty());
  EXPECT_EQ(g.max_new_tokens, 9);
  EXPECT_DOUBLE_EQ(g.temperature, 0.7);
  EXPECT_DOUBLE_EQ(g.top_p, 0.9);
  EXPECT_EQ(g.seed, std::optional<std::uint32_t>(4294967295u));
}

TEST(ProtocolParse, GenerateWithARenderedPrompt) {
  GenerateRequest g = parse_generate(R"({"type":"generate","id":"r3","rendered":"<bos><|turn>user\nhi<turn|>\n"})");
  EXPECT_EQ(g.rendered, std::optional<std::string>("<bos><|turn>user\nhi<turn|>\n"));
  EXPECT_FALSE(g.prompt.has_value());
  EXPECT_TRUE(g.messages.empty());
}

TEST(ProtocolParse, IntegralFloatsCountAsIntegers) {
  // JSON.stringify(256) is "256", but 2.56e2 is the same number to zod.
  GenerateRequest g = parse_generate(R"({"type":"generate","id":"x","prompt":"","max_new_tokens":2.56e2,"seed":7.0})");
  EXPECT_EQ(g.max_new_tokens, 256);
  EXPECT_EQ(g.seed, std::optional<std::uint32_t>(7u));
}

TEST(ProtocolParse, OtherRequests) {
  ParseResult cancel = parse_request(R"({"type":"cancel","id":"r1"})");
  ASSERT_TRUE(cancel.ok());
  EXPECT_EQ(std::get<CancelRequest>(*cancel.request).id, "r1");

  ParseResult reset = parse_request(R"({"type":"reset","session":"s"})");
  ASSERT_TRUE(reset.ok());
  EXPECT_EQ(std::get<ResetRequest>(*reset.request).session, std::optional<std::string>("s"));

  ParseResult reset_all = parse_request(R"({"type":"reset"})");
  ASSERT_TRUE(reset_all.ok());
  EXPECT_FALSE(std::get<ResetRequest>(*reset_all.request).session.has_value());

  EXPECT_TRUE(std::holds_alternative<StatsRequest>(*parse_request(R"({"type":"stats"})").request));
  EXPECT_TRUE(std::holds_alternative<ShutdownRequest>(*parse_request(R"( {"type":"shutdown"} )").request));
}

TEST(ProtocolParse, LengthsAreCountedAsJavaScriptDoes) {
  // 64 "🍎" are 128 UTF-16 units: too long for an id; 32 of them fit.
  std::string apples32;
  for (int i = 0; i < 32; ++i) apples32 += "🍎";
  EXPECT_TRUE(parse_request(R"({"type":"cancel","id":")" + apples32 + R"("})").ok());
  EXPECT_FALSE(parse_request(R"({"type":"cancel","id":")" + apples32 + "a" + R"("})").ok());
  EXPECT_TRUE(parse_request(R"({"type":"cancel","id":")" + std::string(64, 'a') + R"("})").ok());
  EXPECT_FALSE(parse_request(R"({"type":"cancel","id":")" + std::string(65, 'a') + R"("})").ok());
}

struct MalformedCase {
  const char* name;
  std::string line;
  const char* message_part;  // the error message must say what is wrong
  std::optional<std::string> id;
};

void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

class ProtocolMalformed : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(ProtocolMalformed, IsBadRequest) {
  const MalformedCase& c = GetParam();
  ParseResult r = parse_request(c.line);
  ASSERT_FALSE(r.ok()) << c.line;
  EXPECT_EQ(r.error.code, ErrorCode::BadRequest);
  EXPECT_NE(r.error.message.find(c.message_part), std::string::npos)
      << "message: " << r.error.message;
  EXPECT_EQ(r.error.id, c.id);
}

const std::string kBigContent(256 * 1024 + 1, 'x');

INSTANTIATE_TEST_SUITE_P(
    EveryKind, ProtocolMalformed,
    ::testing::Values(
        MalformedCase{"NotJson", "not json", "not valid JSON", std::nullopt},
        MalformedCase{"Truncated", R"({"type":"stats")", "not valid JSON", std::nullopt},
        MalformedCase{"Empty", "", "not valid JSON", std::nullopt},
        MalformedCase{"InvalidUtf8", "{\"type\":\"cancel\",\"id\":\"\xff\"}", "not valid JSON", std::nullopt},
        MalformedCase{"Array", "[1,2]", "JSON object", std::nullopt},
        MalformedCase{"Null", "null", "JSON object", std::nullopt},
        MalformedCase{"String", "\"generate\"", "JSON object", std::nullopt},
        MalformedCase{"NoType", R"({"id":"a"})", "\"type\"", std::optional<std::string>("a")},
        MalformedCase{"TypeNotString", R"({"type":3})", "\"type\"", std::nullopt},
        MalformedCase{"UnknownType", R"({"type":"explode","id":"z"})", "unknown request type", std::optional<std::string>("z")},
        MalformedCase{"GenerateNoId", R"({"type":"generate","prompt":"a"})", "\"id\" is required", std::nullopt},
        MalformedCase{"GenerateEmptyId", R"({"type":"generate","id":"","prompt":"a"})", "\"id\" must be 1 to 64", std::nullopt},
        MalformedCase{"GenerateIdNumber", R"({"type":"generate","id":5,"prompt":"a"})", "\"id\" must be a string", std::nullopt},
        MalformedCase{"GenerateNeither", R"({"type":"generate","id":"g"})", "exactly one of messages, prompt or rendered", std::optional<std::string>("g")},
        MalformedCase{"GenerateBoth", R"({"type":"generate","id":"g","prompt":"a","messages":[{"role":"user","content":"b"}]})", "exactly one of messages, prompt or rendered", std::optional<std::string>("g")},
        MalformedCase{"GenerateRenderedAndPrompt", R"({"type":"generate","id":"g","prompt":"a","rendered":"<bos>b"})", "exactly one of messages, prompt or rendered", std::optional<std::string>("g")},
        MalformedCase{"GenerateRenderedEmpty", R"({"type":"generate","id":"g","rendered":""})", "rendered", std::optional<std::string>("g")},
        MalformedCase{"MessagesNotArray", R"({"type":"generate","id":"g","messages":"hi"})", "must be an array", std::optional<std::string>("g")},
        MalformedCase{"MessagesEmpty", R"({"type":"generate","id":"g","messages":[]})", "at least one", std::optional<std::string>("g")},
        MalformedCase{"MessageNotObject", R"({"type":"generate","id":"g","messages":["hi"]})", "messages[0] must be an object", std::optional<std::string>("g")},
        MalformedCase{"MessageBadRole", R"({"type":"generate","id":"g","messages":[{"role":"robot","content":"b"}]})", "messages[0].role must be one of", std::optional<std::string>("g")},
        MalformedCase{"MessageNoRole", R"({"type":"generate","id":"g","messages":[{"content":"b"}]})", "messages[0].role is required", std::optional<std::string>("g")},
        MalformedCase{"MessageNoContent", R"({"type":"generate","id":"g","messages":[{"role":"user"}]})", "messages[0].content is required", std::optional<std::string>("g")},
        MalformedCase{"MessageContentNotString", R"({"type":"generate","id":"g","messages":[{"role":"user","content":[{"type":"text"}]}]})", "content must be a string", std::optional<std::string>("g")},
        MalformedCase{"MessageContentTooLong", R"({"type":"generate","id":"g","messages":[{"role":"user","content":")" + kBigContent + R"("}]})", "longer than", std::optional<std::string>("g")},
        MalformedCase{"PromptNotString", R"({"type":"generate","id":"g","prompt":1})", "\"prompt\" must be a string", std::optional<std::string>("g")},
        MalformedCase{"PromptNull", R"({"type":"generate","id":"g","prompt":null})", "\"prompt\" must be a string", std::optional<std::string>("g")},
        MalformedCase{"MaxNewZero", R"({"type":"generate","id":"g","prompt":"a","max_new_tokens":0})", "max_new_tokens", std::optional<std::string>("g")},
        MalformedCase{"MaxNewFraction", R"({"type":"generate","id":"g","prompt":"a","max_new_tokens":1.5})", "max_new_tokens", std::optional<std::string>("g")},
        MalformedCase{"MaxNewTooBig", R"({"type":"generate","id":"g","prompt":"a","max_new_tokens":100001})", "max_new_tokens", std::optional<std::string>("g")},
        MalformedCase{"MaxNewString", R"({"type":"generate","id":"g","prompt":"a","max_new_tokens":"5"})", "must be a number", std::optional<std::string>("g")},
        MalformedCase{"TemperatureNegative", R"({"type":"generate","id":"g","prompt":"a","temperature":-0.1})", "temperature", std::optional<std::string>("g")},
        MalformedCase{"TemperatureTooHigh", R"({"type":"generate","id":"g","prompt":"a","temperature":10.5})", "temperature", std::optional<std::string>("g")},
        MalformedCase{"TopPZero", R"({"type":"generate","id":"g","prompt":"a","top_p":0})", "top_p", std::optional<std::string>("g")},
        MalformedCase{"TopPAboveOne", R"({"type":"generate","id":"g","prompt":"a","top_p":1.01})", "top_p", std::optional<std::string>("g")},
        MalformedCase{"SeedNegative", R"({"type":"generate","id":"g","prompt":"a","seed":-1})", "seed", std::optional<std::string>("g")},
        MalformedCase{"SeedTooBig", R"({"type":"generate","id":"g","prompt":"a","seed":4294967296})", "seed", std::optional<std::string>("g")},
        MalformedCase{"SeedFraction", R"({"type":"generate","id":"g","prompt":"a","seed":0.5})", "seed", std::optional<std::string>("g")},
        MalformedCase{"SessionEmpty", R"({"type":"generate","id":"g","prompt":"a","session":""})", "\"session\"", std::optional<std::string>("g")},
        MalformedCase{"SessionTooLong", R"({"type":"generate","id":"g","prompt":"a","session":")" + std::string(129, 's') + R"("})", "\"session\"", std::optional<std::string>("g")},
        MalformedCase{"SessionNull", R"({"type":"generate","id":"g","prompt":"a","session":null})", "\"session\" must be a string", std::optional<std::string>("g")},
        MalformedCase{"CancelNoId", R"({"type":"cancel"})", "\"id\" is required", std::nullopt},
        MalformedCase{"CancelIdTooLong", R"({"type":"cancel","id":")" + std::string(65, 'c') + R"("})", "\"id\" must be 1 to 64", std::nullopt},
        MalformedCase{"ResetSessionNumber", R"({"type":"reset","session":1})", "\"session\" must be a string", std::nullopt}),
    [](const ::testing::TestParamInfo<MalformedCase>& param_info) { return std::string(param_info.param.name); });

TEST(ProtocolSerialise, Ready) {
  Ready m{"sim", "sim (no model)", 2048, 12.3456789, 4096, "0.1.0"};
  json j = json::parse(serialise(m));
  EXPECT_EQ(j, json::parse(R"j({"type":"ready","backend":"sim","model":"sim (no model)","max_context":2048,)j"
                           R"j("load_ms":12.346,"rss_bytes":4096,"version":"0.1.0"})j"));
  EXPECT_EQ(serialise(m).rfind("{\"type\":\"ready\"", 0), 0u) << "type comes first";
  EXPECT_EQ(serialise(m).find('\n'), std::string::npos);
}

TEST(ProtocolSerialise, TokenKeepsUtf8AndReplacesInvalidBytes) {
  json ok = json::parse(serialise(Token{"r", "café 🍎", 42}));
  EXPECT_EQ(ok, json::parse(R"({"type":"token","id":"r","text":"café 🍎","token_id":42})"));
  // Never throws, never writes invalid UTF-8.
  json bad = json::parse(serialise(Token{"r", std::string("a\xC3"), 1}));
  EXPECT_EQ(bad["text"], "a\xEF\xBF\xBD");
}

TEST(ProtocolSerialise, Done) {
  Done d;
  d.id = "r";
  d.finish_reason = FinishReason::Length;
  d.prompt_tokens = 14;
  d.reused_tokens = 3;
  d.generated_tokens = 2;
  d.ttft_ms = 10;
  d.prefill_ms = 9.5;
  d.decode_ms = 1;
  d.prefill_tok_s = std::numeric_limits<double>::infinity();  // not finite → 0, never null
  d.decode_tok_s = -1;          // negative → 0
  d.peak_rss_bytes = 123;
  d.token_ids = {818, 106};
  json j = json::parse(serialise(d));
  EXPECT_EQ(j, json::parse(R"({"type":"done","id":"r","finish_reason":"length","prompt_tokens":14,)"
                           R"("reused_tokens":3,"generated_tokens":2,"ttft_ms":10,"prefill_ms":9.5,)"
                           R"("decode_ms":1,"prefill_tok_s":0,"decode_tok_s":0,"peak_rss_bytes":123,)"
                           R"("token_ids":[818,106]})"));
  d.finish_reason = FinishReason::Stop;
  EXPECT_EQ(json::parse(serialise(d))["finish_reason"], "stop");
  d.finish_reason = FinishReason::Cancelled;
  EXPECT_EQ(json::parse(serialise(d))["finish_reason"], "cancelled");
}

TEST(ProtocolSerialise, StatsAndResetDoneUseNullForNoSession) {
  Stats s;
  s.rss_bytes = 1;
  s.peak_rss_bytes = 2;
  s.busy = true;
  s.resident_tokens = 5;
  s.max_context = 511;
  EXPECT_EQ(json::parse(serialise(s)),
            json::parse(R"({"type":"stats","rss_bytes":1,"peak_rss_bytes":2,"busy":true,"session":null,)"
                        R"("resident_tokens":5,"max_context":511})"));
  s.session = "chat";
  EXPECT_EQ(json::parse(serialise(s))["session"], "chat");

  EXPECT_EQ(json::parse(serialise(ResetDone{})), json::parse(R"({"type":"reset_done","session":null})"));
  EXPECT_EQ(json::parse(serialise(ResetDone{std::string("a")})),
            json::parse(R"({"type":"reset_done","session":"a"})"));
}

TEST(ProtocolSerialise, ErrorsCarryEveryContractCode) {
  const std::pair<ErrorCode, const char*> codes[] = {
      {ErrorCode::BadRequest, "bad_request"}, {ErrorCode::Busy, "busy"},
      {ErrorCode::ContextFull, "context_full"}, {ErrorCode::NotFound, "not_found"},
      {ErrorCode::ModelError, "model_error"},  {ErrorCode::LoadFailed, "load_failed"},
      {ErrorCode::Unsupported, "unsupported"},
  };
  for (const auto& [code, name] : codes) {
    json j = json::parse(serialise(make_error(code, "why", std::string("r9"))));
    EXPECT_EQ(j, json({{"type", "error"}, {"id", "r9"}, {"code", name}, {"message", "why"}}));
  }
  json no_id = json::parse(serialise(make_error(ErrorCode::BadRequest, "x")));
  EXPECT_FALSE(no_id.contains("id")) << "id is optional, never null";
}

TEST(ProtocolRoundTrip, ParsedErrorSerialisesToAValidErrorLine) {
  ParseResult r = parse_request(R"({"type":"generate","id":"abc","prompt":5})");
  ASSERT_FALSE(r.ok());
  json j = json::parse(serialise(r.error));
  EXPECT_EQ(j["type"], "error");
  EXPECT_EQ(j["id"], "abc");
  EXPECT_EQ(j["code"], "bad_request");
}

}  // namespace
}  // namespace orchard::protocol
