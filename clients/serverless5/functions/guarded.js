// A private function: nuage's router lets a call through only with a valid SCW_FUNCTIONS_TOKEN.
module.exports.handle = async () => ({ statusCode: 200, body: "guarded answer" });
