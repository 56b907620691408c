// What a failed call means for the person at the page, from the gRPC status the gateway or the server answered.
import { Code, ConnectError } from "@connectrpc/connect";

export function explain(error: unknown): string {
  const e = ConnectError.from(error);
  switch (e.code) {
    case Code.Unauthenticated:
      return "Your sign-in was not accepted (wrong or changed password, or too many tries). Reload the page to sign in again.";
    case Code.PermissionDenied:
      return "You are signed in, but this user may not call the model. Ask the platform team for access.";
    case Code.ResourceExhausted:
      return `This image is too large for the gateway: ${e.rawMessage || "over its size limit"}. Pick a smaller one.`;
    case Code.Unavailable:
      return "The model server is down or unreachable. Try again in a moment.";
    case Code.InvalidArgument:
      return `The model could not use this file: ${e.rawMessage}`;
    default:
      // A fetch that never got an answer: the gateway itself is down or the network is gone.
      if (e.cause instanceof TypeError) return "The server cannot be reached. Check the connection and reload.";
      return `The call failed (${Code[e.code]}): ${e.rawMessage}`;
  }
}
