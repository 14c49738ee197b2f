// Answers with the variables and secrets it was given and its code version; logs every call,
// so that a cron firing (a POST of the cron's args) shows in `serverless logs`. The 0.1.18 suite
// deploys it too (clients/run copies it into its service): it sets no secrets, and the keys of
// unset ones are left out of the JSON, so its answer has the variables only.
const VERSION = "v1";

module.exports.handle = async (event) => {
  console.log(`hello-node ${VERSION} called: ${event.httpMethod} body=${event.body || ""}`);
  return {
    statusCode: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      runtime: "node",
      version: VERSION,
      ns_var: process.env.NS_VAR,
      fn_var: process.env.FN_VAR,
      ns_secret: process.env.NS_SECRET,
      fn_secret: process.env.FN_SECRET,
      name: process.env.SCW_APPLICATION_NAME,
    }),
  };
};
