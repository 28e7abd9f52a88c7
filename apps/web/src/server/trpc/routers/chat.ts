import { z } from "zod";
import { CHAT_MAX_MESSAGE_CHARS, ChatSampling, ConversationMessageDto } from "@orchard/contracts";
import { router, operatorProcedure, viewerProcedure } from "../init.ts";

const ConversationSummary = z.object({
  id: z.string(),
  title: z.string(),
  deviceId: z.string().nullable(),
  deviceName: z.string().nullable(),
  createdAt: z.number(),
  updatedAt: z.number(),
  messageCount: z.number(),
  answering: z.boolean(),
});
const conversationId = z.object({ id: z.string().min(1).max(64) });

export const chatRouter = router({
  list: viewerProcedure.output(z.array(ConversationSummary)).query(({ ctx }) => ctx.services.conversations.list()),

  get: viewerProcedure
    .input(conversationId)
    .output(ConversationSummary.extend({ messages: z.array(ConversationMessageDto) }))
    .query(({ ctx, input }) => ctx.services.conversations.get(input.id)),

  /** Sends a message into a conversation, or starts one on a device. The answer streams over socket.io. */
  send: operatorProcedure
    .input(
      z
        .object({
          conversationId: z.string().min(1).max(64).optional(),
          deviceId: z.string().min(1).max(64).optional(),
          content: z.string().max(CHAT_MAX_MESSAGE_CHARS, `A message may be at most ${CHAT_MAX_MESSAGE_CHARS} characters long.`),
          ...ChatSampling.shape,
        })
        .refine((v) => v.conversationId !== undefined || v.deviceId !== undefined, { message: "conversationId or deviceId is required" }),
    )
    .output(z.object({ conversationId: z.string(), userMessage: ConversationMessageDto, assistantMessageId: z.string() }))
    .mutation(({ ctx, input }) =>
      ctx.services.conversations.send({
        conversationId: input.conversationId,
        deviceId: input.deviceId,
        content: input.content,
        options: { maxNewTokens: input.maxNewTokens, temperature: input.temperature, topP: input.topP, seed: input.seed },
      }),
    ),

  stop: operatorProcedure
    .input(conversationId)
    .output(z.void())
    .mutation(({ ctx, input }) => ctx.services.conversations.stop(input.id)),

  rename: operatorProcedure
    .input(conversationId.extend({ title: z.string().trim().min(1).max(120) }))
    .output(z.void())
    .mutation(({ ctx, input }) => ctx.services.conversations.rename(input.id, input.title)),

  remove: operatorProcedure
    .input(conversationId)
    .output(z.void())
    .mutation(({ ctx, input }) => ctx.services.conversations.remove(input.id)),
});
