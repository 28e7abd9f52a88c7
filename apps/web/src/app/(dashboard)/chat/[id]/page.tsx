import type { Metadata } from "next";
import { ConversationView } from "@/components/chat/conversation-view";

export const metadata: Metadata = { title: "Chat" };

export default async function ConversationPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const conversationId = decodeURIComponent(id);
  return <ConversationView key={conversationId} id={conversationId} />;
}
