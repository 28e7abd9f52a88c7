import type { Metadata } from "next";
import { NewConversationView } from "@/components/chat/conversation-view";

export const metadata: Metadata = { title: "New chat" };

/** /chat/new?device=ID: an empty conversation on that device (the first message creates it); without a device, a device picker. */
export default async function NewChatPage({ searchParams }: { searchParams: Promise<{ device?: string | string[] }> }) {
  const { device } = await searchParams;
  const deviceId = (Array.isArray(device) ? device[0] : device) || null;
  return <NewConversationView key={deviceId ?? ""} deviceId={deviceId} />;
}
