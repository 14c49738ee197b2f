-- Paces each wrk connection: a pause before every request, so `-c N` offers about
-- N * 1000 / PAUSE_MS requests per second (a little less, by the latency).
local pause = tonumber(os.getenv("PAUSE_MS") or "10")
function delay()
  return pause
end
